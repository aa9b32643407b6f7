"""Kept answers for values that do not change (:mod:`hsdt.signing._asn1_memo`): the same
answers as asn1crypto's and pyHanko-certvalidator's own, computed once where it is safe, and
every time where it is not."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from asn1crypto import algos, core, keys, x509
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy
from test_speedups import _cms_of

from hsdt.signing import _asn1_memo, parsed


def _oids(value: object) -> Iterator[core.ObjectIdentifier]:
    """Every object identifier in a parsed value, walking its native tree's owners."""
    if isinstance(value, core.ObjectIdentifier):
        yield value
    elif isinstance(value, core.Sequence | core.SequenceOf):
        for child in (value[k] for k in range(len(value))) if isinstance(value, core.SequenceOf) \
                else (value[k] for k in value):
            yield from _oids(child)
    elif isinstance(value, core.Choice):
        yield from _oids(value.chosen)


def test_every_identifier_of_a_record_reads_as_asn1crypto_reads_it(sealed: bytes) -> None:
    found = [oid for sd in _cms_of(sealed) for oid in _oids(sd)]
    assert len(found) > 500
    for oid in found:
        fresh = type(oid).load(oid.dump())
        assert _asn1_memo.dotted.fget(oid) == _asn1_memo.original_dotted.fget(fresh)
        assert oid.native == fresh.native


@settings(max_examples=300, deadline=None)
@given(contents=st.binary(max_size=12))
def test_any_encoding_gives_the_dotted_form_asn1crypto_gives(contents: bytes) -> None:
    ours, theirs = core.ObjectIdentifier(), core.ObjectIdentifier()
    ours.contents = theirs.contents = contents
    assert _asn1_memo.dotted.fget(ours) == _asn1_memo.original_dotted.fget(theirs)


def test_an_identifier_is_worked_out_once_per_encoding(sealed: bytes) -> None:
    oids = [oid for sd in _cms_of(sealed)[:4] for oid in _oids(sd)]
    _asn1_memo._dotted_of.cache_clear()
    dotted = [type(oid).load(oid.dump()).dotted for oid in oids]
    assert all(dotted)
    info = _asn1_memo._dotted_of.cache_info()
    assert info.misses == len({oid.contents for oid in oids}) < len(oids) and info.hits > 0


def _dss_certificates(sealed: bytes) -> list[bytes]:
    from pyhanko.sign.validation.dss import DocumentSecurityStore
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(sealed)))
    return [c.dump() for c in dss.load_certs()]


def test_a_shared_names_string_form_is_made_once_and_a_fresh_ones_every_time(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    der = _dss_certificates(sealed)[0]
    shared, fresh = parsed.load(x509.Certificate, der), x509.Certificate.load(der)
    expected = _asn1_memo.original_name_hashable.fget(x509.Certificate.load(der).subject)
    assert shared.subject.hashable == fresh.subject.hashable == expected
    assert parsed.kept(shared.subject) and not parsed.kept(fresh.subject)
    made: list[int] = []
    original = _asn1_memo.original_name_hashable

    class Counting:
        @staticmethod
        def fget(name: x509.Name) -> str:
            made.append(1)
            return str(original.fget(name))

    monkeypatch.setattr(_asn1_memo, "original_name_hashable", Counting)
    for _ in range(3):
        assert shared.subject.hashable == fresh.subject.hashable == expected
    assert len(made) == 3  # the fresh name's, each time; the shared one was made before


def _rsa_key(bits: int) -> keys.PublicKeyInfo:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return keys.PublicKeyInfo.load(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def test_weak_algorithm_verdicts_are_pyhankos_kept_per_policy() -> None:
    strong, weak_key = _rsa_key(2048), _rsa_key(1024)
    mechanisms = [algos.SignedDigestAlgorithm({"algorithm": a}) for a in
                  ("sha256_rsa", "sha1_rsa", "md5_rsa", "sha512_rsa", "sha256_ecdsa")]
    moments = [None, datetime(2026, 1, 1, tzinfo=UTC), datetime(2046, 1, 1, tzinfo=UTC)]
    ours, theirs = DisallowWeakAlgorithmsPolicy(), DisallowWeakAlgorithmsPolicy()
    verdicts = set()
    for algo in mechanisms:
        for key in (strong, weak_key, None):
            answers = {_asn1_memo.original_signature_algorithm_allowed(theirs, algo, m, key)
                       for m in moments}
            assert len(answers) == 1  # this policy does not look at the moment
            for m in moments:
                assert _asn1_memo.signature_algorithm_allowed(ours, algo, m, key) in answers
            verdicts |= answers
    assert len({v.allowed for v in verdicts}) == 2  # weak ones refused, strong ones allowed
    assert len(vars(ours)[_asn1_memo._VERDICTS]) == len(mechanisms) * 3


def test_a_policy_of_its_own_is_asked_every_time() -> None:
    class Stricter(DisallowWeakAlgorithmsPolicy):
        asked = 0

        def signature_algorithm_allowed(self, *args: object) -> object:  # type: ignore[override]
            Stricter.asked += 1
            return super().signature_algorithm_allowed(*args)  # type: ignore[arg-type]

    policy, algo = Stricter(), algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
    for _ in range(3):
        _asn1_memo.signature_algorithm_allowed(policy, algo, None, None)
    assert _asn1_memo._VERDICTS not in vars(policy)


def test_the_kept_verdicts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_asn1_memo, "VERDICTS_KEPT", 2)
    policy = DisallowWeakAlgorithmsPolicy()
    for a in ("sha256_rsa", "sha384_rsa", "sha512_rsa"):
        _asn1_memo.signature_algorithm_allowed(policy, algos.SignedDigestAlgorithm({"algorithm": a}),
                                               None, None)
    assert len(vars(policy)[_asn1_memo._VERDICTS]) == 1


_Signed = tuple[bytes, bytes, keys.PublicKeyInfo, algos.SignedDigestAlgorithm]


def _signed_by_issuer(sealed: bytes) -> list[_Signed]:
    """Each certificate of the record's DSS whose issuer is there too: what its issuer signed."""
    certs = [x509.Certificate.load(der) for der in _dss_certificates(sealed)]
    by_subject = {c.subject.dump(): c for c in certs}
    return [(c.signature, c["tbs_certificate"].dump(), by_subject[c.issuer.dump()].public_key,
             c["signature_algorithm"]) for c in certs if c.issuer.dump() in by_subject]


def test_a_valid_signature_is_checked_once_and_an_invalid_one_every_time(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.exceptions import InvalidSignature
    signed = _signed_by_issuer(sealed)
    assert len(signed) >= 3
    checked: list[bytes] = []
    original = _asn1_memo.original_validate_raw

    def counted(signature: bytes, *rest: object) -> None:
        checked.append(signature)
        original(signature, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(_asn1_memo, "original_validate_raw", counted)
    monkeypatch.setattr(_asn1_memo, "_valid", {})
    for _ in range(3):
        for signature, data, key, algo in signed:
            _asn1_memo.validate_raw(signature, data, key, algo)
    assert len(checked) == len(signed)
    signature, data, key, algo = signed[0]
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    for bad in ((forged, data), (signature, data + b"\x00")):
        for _ in range(2):
            with pytest.raises(InvalidSignature):
                _asn1_memo.validate_raw(bad[0], bad[1], key, algo)
            with pytest.raises(InvalidSignature):
                original(bad[0], bad[1], key, algo)
    assert len(checked) == len(signed) + 4  # each refusal checked again
    other_key = next(k for _, _, k, _ in signed if k.dump() != key.dump())
    with pytest.raises(InvalidSignature):  # the right bytes under another key
        _asn1_memo.validate_raw(signature, data, other_key, algo)


def test_large_signed_data_is_not_kept_and_the_kept_are_bounded(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    signature, data, key, algo = _signed_by_issuer(sealed)[0]
    monkeypatch.setattr(_asn1_memo, "_valid", {})
    monkeypatch.setattr(_asn1_memo, "LARGEST_KEPT", len(data) - 1)
    _asn1_memo.validate_raw(signature, data, key, algo)
    assert not _asn1_memo._valid
    monkeypatch.setattr(_asn1_memo, "LARGEST_KEPT", 1 << 20)
    monkeypatch.setattr(_asn1_memo, "VALID_KEPT", 2)
    for signature, data, key, algo in _signed_by_issuer(sealed)[:3]:
        _asn1_memo.validate_raw(signature, data, key, algo)
    assert len(_asn1_memo._valid) == 1


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("error", type(exc), str(exc))


def test_attributes_are_found_by_type_as_pyhanko_finds_them(sealed: bytes) -> None:
    from asn1crypto import cms
    names = ["content_type", "message_digest", "signing_time", "signing_certificate_v2",
             "signing_certificate", "cms_algorithm_protection", "signature_time_stamp_token",
             "not_an_attribute"]
    seen = 0
    for sd in _cms_of(sealed):
        info = sd["signer_infos"][0]
        for attrs in (info["signed_attrs"], info["unsigned_attrs"]):
            for name in names:
                ours = list(_asn1_memo.find_cms_attribute_iter(attrs, name))
                theirs = list(_asn1_memo.original_attribute_iter(attrs, name))
                assert len(ours) == len(theirs) and all(a is b for a, b in zip(ours, theirs, strict=True))
                seen += len(ours)
                unique = _outcome(lambda a=attrs, n=name: _asn1_memo.find_unique_cms_attribute(a, n))
                expected = _outcome(lambda a=attrs, n=name: _asn1_memo.original_unique_attribute(a, n))
                assert unique[0] == expected[0] and (unique[1] is expected[1] if unique[0] == "ok"
                                                     else unique[1:] == expected[1:])
            if isinstance(attrs, cms.CMSAttributes) and len(attrs):
                assert _asn1_memo._INDEX in vars(attrs)  # types read once for this object
    assert seen > 100
    # twice the same type: refused in pyHanko's words; a plain list and a changed set of
    # attributes are looked through as pyHanko looks
    attrs = _cms_of(sealed)[0]["signer_infos"][0]["signed_attrs"].copy()
    doubled = cms.CMSAttributes([*attrs, attrs[0]])
    assert _outcome(lambda: _asn1_memo.find_unique_cms_attribute(doubled, attrs[0]["type"].native)) \
        == _outcome(lambda: _asn1_memo.original_unique_attribute(doubled, attrs[0]["type"].native))
    for plain in (list(attrs), None, []):
        assert list(_asn1_memo.find_cms_attribute_iter(plain, "message_digest")) == \
            list(_asn1_memo.original_attribute_iter(plain, "message_digest"))
    before = len(list(_asn1_memo.find_cms_attribute_iter(attrs, "message_digest")))
    attrs.append(attrs[[a["type"].native for a in attrs].index("message_digest")])
    assert len(list(_asn1_memo.find_cms_attribute_iter(attrs, "message_digest"))) == before + 1
