"""Certificates and revocation answers parsed once per encoding (:mod:`hsdt.signing.parsed`),
and the DSS read once per verification (``verification._DssEvidence``)."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509
from asn1crypto.core import Sequence, SequenceOf
from conftest import World
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.dss import DocumentSecurityStore

from hsdt.domain.plans import Role
from hsdt.signing import parsed
from hsdt.signing.record_state import read_record
from hsdt.signing.verification import _DssEvidence


def _certs(sealed: bytes) -> list[bytes]:
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(sealed)))
    return [c.dump() for c in dss.load_certs()]


def test_one_object_per_encoding_within_a_thread(sealed: bytes) -> None:
    der = _certs(sealed)[0]
    first = parsed.load(x509.Certificate, der)
    assert parsed.load(x509.Certificate, bytes(der)) is first  # another bytes object, same DER
    assert first.dump() == der == x509.Certificate.load(der).dump()
    other: list[x509.Certificate] = []
    t = threading.Thread(target=lambda: other.append(parsed.load(x509.Certificate, der)))
    t.start()
    t.join()
    assert other[0] is not first and other[0].dump() == der  # parsed lazily: not shared


def test_the_cache_is_bounded(sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed, "LIMIT", 2)
    monkeypatch.setattr(parsed._local, "cache", OrderedDict(), raising=False)
    a, b, c = _certs(sealed)[:3]
    first = parsed.load(x509.Certificate, a)
    parsed.load(x509.Certificate, b)
    parsed.load(x509.Certificate, a)  # a used last: b goes first
    parsed.load(x509.Certificate, c)
    assert list(parsed._local.cache) == [(x509.Certificate, a), (x509.Certificate, c)]
    assert parsed.load(x509.Certificate, a) is first
    assert parsed.load(x509.Certificate, b) is not None  # parsed again: it had gone


def test_dss_evidence_is_what_pyhanko_reads(sealed: bytes) -> None:
    reader = PdfFileReader(io.BytesIO(sealed))
    ours = _DssEvidence.read(reader)
    assert ours is not None
    vc = DocumentSecurityStore.read_dss(reader).as_validation_context(
        {"allow_fetching": False, "trust_roots": []})
    theirs_certs = [c.dump() for c in DocumentSecurityStore.read_dss(reader).load_certs()]
    assert [c.dump() for c in ours.certs] == theirs_certs
    # the context keeps revocation answers in an order of its own
    assert sorted(o.dump() for o in ours.ocsps) == sorted(o.dump() for o in vc.ocsps)
    assert sorted(c.dump() for c in ours.crls) == sorted(c.dump() for c in vc.crls)
    assert len(ours.certs) > 5 and ours.ocsps and ours.crls
    again = _DssEvidence.read(PdfFileReader(io.BytesIO(sealed)))
    assert again is not None and all(a is b for a, b in zip(again.certs, ours.certs, strict=True))


def test_a_record_without_dss_has_no_evidence(world: World) -> None:
    signed = world.sign_until(world.records[1], stop=lambda f: f.role is Role.PRINCIPAL)
    assert _DssEvidence.read(PdfFileReader(io.BytesIO(signed))) is None


def _crl(sealed: bytes) -> bytes:
    dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(sealed)))
    return next(iter(dss.crls)).get_object().data


def test_a_shared_value_dumps_its_encoding_without_walking_its_parts(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed._local, "cache", OrderedDict(), raising=False)
    der = _certs(sealed)[-1]
    fresh = x509.Certificate.load(der)
    cert = parsed.load(x509.Certificate, der)
    crl_der = _crl(sealed)
    revocations = parsed.load(asn1_crl.CertificateList, crl_der)
    # what path validation reads first: every part parsed, as in a verification
    for c in (fresh, cert):
        _ = (c.subject.human_friendly, c.issuer.hashable, c.public_key.native, c.key_identifier,
             c.serial_number, c["tbs_certificate"]["validity"]["not_after"].native)
    parts = (lambda c: c, lambda c: c["tbs_certificate"], lambda c: c.subject,
             lambda c: c.subject.chosen, lambda c: c.issuer, lambda c: c.issuer.chosen,
             lambda c: c.public_key)
    expected = [part(fresh).dump() for part in parts]

    def walked(self: object) -> bool:
        raise AssertionError("asn1crypto looked for a change in a shared value")

    monkeypatch.setattr(Sequence, "_is_mutated", walked)
    monkeypatch.setattr(SequenceOf, "_is_mutated", walked)
    assert [part(cert).dump() for part in parts] == expected
    assert cert.dump() == der
    assert revocations.dump() == crl_der and revocations.issuer.dump() == revocations.issuer.dump()
    monkeypatch.undo()
    # re-encoding as DER is asn1crypto's answer for the value as read, and stays
    assert cert.dump(force=True) == x509.Certificate.load(der).dump(force=True) == cert.dump()


def test_a_fresh_value_keeps_asn1cryptos_dump(sealed: bytes) -> None:
    der = _certs(sealed)[0]
    fresh = x509.Certificate.load(der)
    assert "dump" not in vars(fresh) and "dump" not in vars(fresh.subject)


def test_a_verification_trusts_the_shared_anchor_objects(world: World, sealed: bytes) -> None:
    verifier = world.verifier()
    state = read_record(sealed)
    vc = verifier._context(state, True, _DssEvidence.read(state.reader))[0]
    anchors = list(vc.path_builder.trust_manager.iter_certs())
    assert sorted(a.dump() for a in anchors) == sorted(r.dump() for r in verifier.trust_roots)
    assert all(a is parsed.load(x509.Certificate, a.dump()) for a in anchors)


def test_a_damaged_value_is_shared_as_asn1crypto_parsed_it(
        sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed._local, "cache", OrderedDict(), raising=False)
    der = _certs(sealed)[-1]

    def damaged(self: x509.Certificate) -> None:
        raise ValueError("a damaged subject (test)")

    monkeypatch.setattr(x509.Certificate, "subject", property(damaged))
    cert = parsed.load(x509.Certificate, der)  # no error here: asn1crypto parses lazily
    assert not parsed.kept(cert) and cert.dump() == der
    with pytest.raises(ValueError, match="damaged subject"):
        _ = cert.subject  # where pyHanko meets it


def test_dss_evidence_keeps_one_certificate_per_issuer_and_serial_as_pyhanko_does(
        sealed: bytes) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    w = IncrementalPdfFileWriter(io.BytesIO(sealed))
    dss = w.root["/DSS"]
    certs = dss["/Certs"]
    first = certs[0].get_object().data
    certs.append(w.add_object(generic.StreamObject(stream_data=first)))  # the same again
    w.update_container(certs if isinstance(dss.raw_get("/Certs"), generic.IndirectObject) else dss)
    out = io.BytesIO()
    w.write(out)
    reader = PdfFileReader(out)
    ours = _DssEvidence.read(reader)
    theirs = DocumentSecurityStore.read_dss(reader)
    assert ours is not None and len(certs) == len(theirs.certs) + 1
    assert [c.dump() for c in ours.certs] == [c.get_object().data for c in theirs.certs.values()]
