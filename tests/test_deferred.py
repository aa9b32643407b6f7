"""Deferred signing: the server prepares, a key it never holds signs, the server completes.

The "client" here is what the signing agent will be: a software key (cryptography) or a
PKCS#11 token driven directly through python-pkcs11, signing the returned bytes with the
returned mechanism. Nothing is mocked: TSA and OCSP are the test PKI's, on loopback.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
import pytest
from asn1crypto import cms
from conftest import World
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import pkcs12
from pkcs11 import Mechanism, ObjectClass
from pyhanko.pdf_utils.reader import PdfFileReader

from hsdt.domain.bundles import lock_bundle
from hsdt.domain.errors import SigningRefused
from hsdt.domain.plans import Role
from hsdt.domain.records import Record, records_for
from hsdt.domain.sample import sample_bundle
from hsdt.signing import testpki
from hsdt.signing.deferred import DeferredSigner, DeferredState, PreparedSignature
from hsdt.signing.record_state import read_record

ClientKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def deferred(world: World) -> DeferredSigner:
    return DeferredSigner(world.signer)


def _client_key(world: World, name: str) -> ClientKey:
    """The private key as the teacher's own software would hold it."""
    ident = world.pki.identity(name)
    assert ident.p12_path is not None
    key, _, _ = pkcs12.load_key_and_certificates(ident.p12_path.read_bytes(),
                                                 testpki.SOFTWARE_P12_PASSPHRASE)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key


def _client_sign(key: ClientKey, prep: PreparedSignature) -> bytes:
    """Sign the returned bytes with the returned mechanism, and nothing else."""
    assert prep.digest_algorithm == "sha256"
    if prep.signature_mechanism == "rsassa_pkcs1v15":
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(prep.to_be_signed, padding.PKCS1v15(), hashes.SHA256())
    assert prep.signature_mechanism == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey)
    return key.sign(prep.to_be_signed, ec.ECDSA(hashes.SHA256()))


def _certified(world: World, rec: Record) -> tuple[bytes, str, str]:
    """A record signed by the school seal, the homeroom teacher's subject field and id."""
    pdf = world.sign_until(rec, stop=lambda f: f.role is not Role.SCHOOL_SEAL)
    hr = rec.bundle.class_.homeroom_teacher_id
    field = next(f.name for f in read_record(pdf).plan.fields
                 if f.role is Role.SUBJECT_TEACHER and f.assignee == hr)
    return pdf, field, hr


def _prepare(deferred: DeferredSigner, world: World, pdf: bytes, field: str, who: str,
             rec: Record | None = None) -> PreparedSignature:
    ident = world.pki.identity(who)
    return deferred.prepare(pdf, field, ident.cert, list(ident.chain),
                            expected_data_sha256=rec.data_sha256 if rec else None)


def _pdfsig(pdf: bytes, tmp_path: Path) -> str:
    f = tmp_path / "signed.pdf"
    f.write_bytes(pdf)
    return subprocess.run(["pdfsig", str(f)], capture_output=True, text=True, check=True).stdout


def _refused(code: str, call: object, *args: object, **kw: object) -> SigningRefused:
    with pytest.raises(SigningRefused) as info:
        call(*args, **kw)  # type: ignore[operator]
    assert info.value.code == code, info.value.message
    return info.value


def _sig_dict(pdf: bytes, field: str) -> dict[str, object]:
    sig = next(s for s in PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
               if s.field_name == field)
    d = sig.sig_object
    attrs = sorted(a["type"].native for a in sig.signer_info["signed_attrs"])
    return {"reason": d.get("/Reason"), "name": d.get("/Name"), "location": d.get("/Location"),
            "subfilter": d.get("/SubFilter"), "signed_attrs": attrs,
            "sig_algo": sig.signer_info["signature_algorithm"]["algorithm"].native,
            "unsigned": sorted(a["type"].native for a in sig.signer_info["unsigned_attrs"]),
            "appearance": "/AP" in sig.sig_field}


# -- the whole round trip -------------------------------------------------------------------

def test_software_key_round_trip_matches_a_server_signature(world: World, deferred: DeferredSigner,
                                                             tmp_path: Path) -> None:
    rec = world.records[3]
    pdf, field, hr = _certified(world, rec)
    prep = _prepare(deferred, world, pdf, field, hr, rec)
    # The client gets the signed attributes (DER SET OF, ~200-250 bytes), nothing else.
    assert prep.to_be_signed[0] == 0x31 and 150 < len(prep.to_be_signed) < 400
    assert (prep.signature_mechanism, prep.pkcs11_mechanism) == ("rsassa_pkcs1v15", "SHA256_RSA_PKCS")
    assert set(prep.for_client()) >= {"id", "to_be_signed", "digest_algorithm", "expires_at"}
    assert "state" not in prep.for_client()

    signed = deferred.complete(prep.state, _client_sign(_client_key(world, hr), prep), record=pdf)

    assert signed.startswith(pdf)  # an incremental update: earlier signatures untouched
    assert field in read_record(signed).filled_fields
    report = world.verifier(online=True).verify(signed)
    check = next(s for s in report.signatures if s.field == field)
    assert check.ok and check.intact and check.valid and check.trusted, check.problems
    assert check.timestamped and check.revocation_checked and check.bound_to_assignee
    assert check.coverage == "ENTIRE_FILE"
    out = _pdfsig(signed, tmp_path)
    assert out.count("Signature is Valid") == 2 and "Signature is Invalid" not in out, out
    # Exactly what a server signature of the same field looks like.
    server = world.signer.sign(pdf, field, world.key(hr), expected_data_sha256=rec.data_sha256)
    mine, theirs = _sig_dict(signed, field), _sig_dict(server, field)
    assert mine == theirs
    assert "signing_time" not in mine["signed_attrs"]  # PAdES: the timestamp says when


def test_principal_key_in_softhsm_via_python_pkcs11(world: World, deferred: DeferredSigner,
                                                   tmp_path: Path) -> None:
    """The principal locks the record with a key on a token; then the school seals it."""
    rec = world.records[2]
    principal = rec.bundle.school.principal_id
    pdf = world.sign_until(rec, stop=lambda f: f.role is Role.PRINCIPAL)
    ident = world.pki.identity(principal)
    assert ident.on_hsm and ident.pkcs11_key_label
    prep = deferred.prepare(pdf, "principal", ident.cert, list(ident.chain),
                            expected_data_sha256=rec.data_sha256)
    assert prep.pkcs11_mechanism == "SHA256_RSA_PKCS"

    world.pki.activate_softhsm()
    token = pkcs11.lib(world.pki.pkcs11_lib).get_token(token_label=world.pki.token_label)
    try:
        session = token.open(user_pin=world.pki.user_pin)
    except pkcs11.exceptions.UserAlreadyLoggedIn:  # the seal's session logged this process in
        session = token.open()
    with session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=ident.pkcs11_key_label)
        value = key.sign(prep.to_be_signed, mechanism=getattr(Mechanism, prep.pkcs11_mechanism))

    signed = deferred.complete(prep.state, value, record=pdf)
    sealed = world.signer.seal(signed, expected_data_sha256=rec.data_sha256)
    report = world.verifier(online=False).verify(sealed)
    assert report.valid and report.plan_complete and report.sealed, report.problems
    assert next(s for s in report.signatures if s.field == "principal").bound_to_assignee
    out = _pdfsig(sealed, tmp_path)
    assert out.count("Signature is Valid") == 15 and "Signature is Invalid" not in out, out


def test_ecdsa_value_as_der_or_as_raw_r_s(world: World, deferred: DeferredSigner) -> None:
    """Tokens return ECDSA as raw r||s, software as DER: both are accepted, DER is embedded."""
    rec = world.records[1]
    pdf, field, _ = _certified(world, rec)
    key = _client_key(world, "ec_p256_ok")
    for raw in (False, True):
        prep = _prepare(deferred, world, pdf, field, "ec_p256_ok")
        assert (prep.signature_mechanism, prep.pkcs11_mechanism) == ("ecdsa", "ECDSA_SHA256")
        value = _client_sign(key, prep)
        if raw:
            r, s = decode_dss_signature(value)
            value = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        signed = deferred.complete(prep.state, value, record=pdf)
        check = next(s for s in world.verifier(online=True).verify(signed).signatures
                     if s.field == field)
        assert check.intact and check.valid and check.trusted, check.problems


# -- refusals -------------------------------------------------------------------------------

def test_wrong_signature_values_are_refused_and_nothing_is_embedded(
        world: World, deferred: DeferredSigner) -> None:
    rec = world.records[1]
    pdf, field, hr = _certified(world, rec)
    prep = _prepare(deferred, world, pdf, field, hr, rec)
    mine = _client_key(world, hr)
    other = next(t.id for t in rec.bundle.teachers if t.id not in (hr, rec.bundle.school.principal_id))
    good = _client_sign(mine, prep)
    forged = [
        mine.sign(prep.to_be_signed + b"\x00", padding.PKCS1v15(), hashes.SHA256()),  # other bytes
        mine.sign(prep.to_be_signed, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                  hashes.SHA256()),  # other mechanism
        _client_sign(_client_key(world, other), prep),  # another teacher's key
        bytes(len(good)), good[:-1], b"", bytes([good[0] ^ 1]) + good[1:],
    ]
    for value in forged:
        err = _refused("bad_signature_value", deferred.complete, prep.state, value, record=pdf)
        assert "không nhúng" in err.message
    # Still usable with the right value: a refusal consumed nothing.
    assert field in read_record(deferred.complete(prep.state, good, record=pdf)).filled_fields


@pytest.mark.parametrize(("case", "code"), [
    ("someone_elses_field", "cert_not_assignee"),
    ("out_of_order", "out_of_order"),
    ("revoked", "cert_revoked"),
    ("expired_cert", "cert_expired"),
    ("seal_on_teacher_field", "cert_not_assignee"),
    ("data_lock", "data_lock_mismatch"),
])
def test_refused_before_anything_is_returned(world: World, deferred: DeferredSigner,
                                             case: str, code: str) -> None:
    rec = world.records[1]
    pdf, field, hr = _certified(world, rec)
    other = next(t.id for t in rec.bundle.teachers if t.id not in (hr, rec.bundle.school.principal_id))
    args = {
        "someone_elses_field": (field, other, None),
        "out_of_order": ("homeroom", hr, None),
        "revoked": (field, "revoked", None),
        "expired_cert": (field, "expired", None),
        "seal_on_teacher_field": (field, "seal", None),
        "data_lock": (field, hr, "0" * 64),
    }[case]
    ident = world.pki.identity(args[1])
    _refused(code, deferred.prepare, pdf, args[0], ident.cert, list(ident.chain),
             expected_data_sha256=args[2])


def test_expired_preparation_is_refused(world: World, deferred: DeferredSigner) -> None:
    rec = world.records[1]
    pdf, field, hr = _certified(world, rec)
    prep = _prepare(deferred, world, pdf, field, hr, rec)
    later = DeferredSigner(world.signer, clock=lambda: datetime.now(UTC) + timedelta(minutes=16))
    value = _client_sign(_client_key(world, hr), prep)
    err = _refused("preparation_expired", later.complete, prep.state, value, record=pdf)
    assert "hết hạn" in err.message


def test_record_that_moved_on_is_refused(world: World, deferred: DeferredSigner) -> None:
    """Two teachers of the same stage prepare on one version; the second must start again,
    or its signature would cut the first one off."""
    rec = world.records[1]
    pdf, field_a, hr = _certified(world, rec)
    plan = read_record(pdf).plan
    b = next(f for f in plan.fields if f.role is Role.SUBJECT_TEACHER and f.assignee != hr
             and f.stage == plan.field(field_a).stage)
    prep_a = _prepare(deferred, world, pdf, field_a, hr)
    prep_b = _prepare(deferred, world, pdf, b.name, b.assignee)
    v2 = deferred.complete(prep_a.state, _client_sign(_client_key(world, hr), prep_a), record=pdf)
    value_b = _client_sign(_client_key(world, b.assignee), prep_b)
    _refused("record_changed", deferred.complete, prep_b.state, value_b, record=v2)
    again = _prepare(deferred, world, v2, b.name, b.assignee)
    v3 = deferred.complete(again.state, _client_sign(_client_key(world, b.assignee), again),
                           record=v2)
    assert {field_a, b.name} <= set(read_record(v3).filled_fields)
    assert len(PdfFileReader(io.BytesIO(v3), strict=False).embedded_signatures) == 3


def test_damaged_or_incoherent_state_is_refused(world: World, deferred: DeferredSigner) -> None:
    rec = world.records[1]
    pdf, field, hr = _certified(world, rec)
    prep = _prepare(deferred, world, pdf, field, hr)
    value = _client_sign(_client_key(world, hr), prep)
    flipped = bytearray(prep.state)
    flipped[len(flipped) // 2] ^= 0x01
    _refused("preparation_invalid", deferred.complete, bytes(flipped), value, record=pdf)
    _refused("preparation_invalid", deferred.complete, b"not a state", value, record=pdf)
    # Well-formed, checksum intact, but the revision is not the one the attributes commit to.
    st = DeferredState.from_bytes(prep.state)
    inc = st.increment.replace(b"/Reason", b"/Raison", 1)
    assert inc != st.increment
    _refused("preparation_invalid", deferred.complete, replace(st, increment=inc).to_bytes(),
             value, record=pdf)


# -- restart --------------------------------------------------------------------------------

_COMPLETE_ELSEWHERE = """
import sys
from pathlib import Path
from hsdt.signing import testpki
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.deferred import DeferredSigner
from hsdt.signing.pades import RecordSigner, SigningEnvironment

d = Path(sys.argv[1])
pki = testpki.load(Path(sys.argv[2]))
env = SigningEnvironment(pki.trust_roots(), pki.tsa_url, CertificateBindings(pki.bindings()))
with RecordSigner(env) as signer:
    out = DeferredSigner(signer).complete((d / "state").read_bytes(), (d / "value").read_bytes(),
                                          record=(d / "record.pdf").read_bytes())
(d / "signed.pdf").write_bytes(out)
"""


def test_state_completes_in_another_process(world: World, deferred: DeferredSigner,
                                            tmp_path: Path) -> None:
    """The state is bytes: stored, read back by a fresh process, it completes."""
    rec = world.records[3]
    pdf, field, hr = _certified(world, rec)
    prep = _prepare(deferred, world, pdf, field, hr, rec)
    (tmp_path / "state").write_bytes(prep.state)
    (tmp_path / "record.pdf").write_bytes(pdf)
    (tmp_path / "value").write_bytes(_client_sign(_client_key(world, hr), prep))
    env = {**os.environ, **world.pki.env()}
    run = subprocess.run([sys.executable, "-c", _COMPLETE_ELSEWHERE, str(tmp_path),
                          str(world.pki.workdir)], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parent.parent, timeout=120)
    assert run.returncode == 0, run.stderr
    signed = (tmp_path / "signed.pdf").read_bytes()
    check = next(s for s in world.verifier(online=True).verify(signed).signatures
                 if s.field == field)
    assert check.ok and check.valid and check.trusted and check.timestamped, check.problems
    # The state is compact: the record is not in it.
    assert len(prep.state) < 64_000 < len(pdf)


# -- a class in one sitting -----------------------------------------------------------------

CLASS_SIZE = int(os.environ.get("HSDT_DEFERRED_CLASS_SIZE", "40"))


def test_a_class_in_one_sitting(world: World, deferred: DeferredSigner, tmp_path: Path) -> None:
    """The homeroom teacher's subject field on every record of a class: all prepared, then
    all signed on the client, then all completed."""
    bundle = sample_bundle(seed=5, students=CLASS_SIZE)  # same school and teachers as world
    records = records_for(lock_bundle(bundle, "Văn thư kiểm thử"))
    hr = bundle.class_.homeroom_teacher_id
    certified = [_certified(world, r) for r in records]

    t0 = time.perf_counter()
    preps = []
    for rec, (pdf, field, _) in zip(records, certified, strict=True):
        t = time.perf_counter()
        preps.append((_prepare(deferred, world, pdf, field, hr, rec), time.perf_counter() - t))
    t1 = time.perf_counter()
    key = _client_key(world, hr)
    values = [_client_sign(key, p) for p, _ in preps]
    t2 = time.perf_counter()
    done, complete_s = [], []
    for (prep, _), value, (pdf, _, _) in zip(preps, values, certified, strict=True):
        t = time.perf_counter()
        done.append(deferred.complete(prep.state, value, record=pdf))
        complete_s.append(time.perf_counter() - t)
    t3 = time.perf_counter()

    for out, (pdf, field, _) in zip(done, certified, strict=True):
        assert out.startswith(pdf) and field in read_record(out).filled_fields
    pairs = list(zip(done, certified, strict=True))
    for out, (_, field, _) in pairs if CLASS_SIZE <= 4 else [pairs[0], pairs[-1]]:
        check = next(s for s in world.verifier(online=True).verify(out).signatures
                     if s.field == field)
        assert check.ok and check.valid and check.trusted, check.problems
    assert "Signature is Valid" in _pdfsig(done[-1], tmp_path)
    states = [len(p.state) for p, _ in preps]
    prepare_ms = [1000 * s for _, s in preps]
    print(f"\ndeferred class of {CLASS_SIZE}: prepare {1000 * (t1 - t0) / CLASS_SIZE:.0f} ms/record "
          f"(median {statistics.median(prepare_ms):.0f}, first {prepare_ms[0]:.0f}), "
          f"client {1000 * (t2 - t1) / CLASS_SIZE:.1f} ms, "
          f"complete {1000 * (t3 - t2) / CLASS_SIZE:.0f} ms/record "
          f"(median {1000 * statistics.median(complete_s):.0f}); "
          f"state {min(states)}–{max(states)} bytes; "
          f"record {len(certified[0][0])} → {len(done[0])} bytes")


def test_signed_attributes_embedded_verbatim(world: World, deferred: DeferredSigner) -> None:
    """The CMS carries exactly the attributes the client signed (re-encoding would break it)."""
    rec = world.records[3]
    pdf, field, hr = _certified(world, rec)
    prep = _prepare(deferred, world, pdf, field, hr)
    signed = deferred.complete(prep.state, _client_sign(_client_key(world, hr), prep), record=pdf)
    sig = next(s for s in PdfFileReader(io.BytesIO(signed), strict=False).embedded_signatures
               if s.field_name == field)
    embedded = cms.CMSAttributes.load(prep.to_be_signed)
    assert sig.signer_info["signed_attrs"].contents == embedded.contents


def test_completion_judges_the_certificate_again_without_parsing_the_record_again(
        world: World, deferred: DeferredSigner, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same process prepared these very bytes: completing re-judges the certificate (a
    binding withdrawn meanwhile is refused) but does not parse the record a second time; a
    process that did not prepare them (after a restart) checks everything again."""
    from hsdt.signing import pades
    from hsdt.signing.bindings import CertificateBindings

    rec = world.records[2]
    pdf, field, hr = _certified(world, rec)
    reads: list[int] = []
    original = pades.read_record
    monkeypatch.setattr(pades, "read_record", lambda data: reads.append(1) or original(data))
    first = _prepare(deferred, world, pdf, field, hr, rec)
    second = _prepare(deferred, world, pdf, field, hr, rec)
    assert len(reads) == 2
    value = _client_sign(_client_key(world, hr), first)
    bindings = world.signer.env.bindings
    fp = world.pki.identity(hr).fingerprint_sha256
    world.signer.env.bindings = CertificateBindings(
        {k: v for k, v in bindings.by_fingerprint.items() if k != fp})
    try:
        _refused("cert_unbound", deferred.complete, first.state, value, record=pdf)
    finally:
        world.signer.env.bindings = bindings
    assert len(reads) == 2  # judged from the remembered field, not from a new parse
    signed = deferred.complete(second.state, _client_sign(_client_key(world, hr), second), record=pdf)
    assert len(reads) == 2 and field in read_record(signed).filled_fields
    fresh = DeferredSigner(world.signer)  # another process: nothing remembered
    again = _prepare(deferred, world, pdf, field, hr, rec)
    fresh.complete(again.state, _client_sign(_client_key(world, hr), again), record=pdf)
    assert len(reads) == 4  # its own preparation, and the full check of the fresh signer
