"""The test PKI against real components: SoftHSM2, certomancer's Animator, pyHanko.

One PKI is provisioned and served for the whole module (cold build about a second). A
component that cannot be reached makes the fixtures raise ``TestPKIError`` naming it: these
tests fail then, they never skip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pikepdf
import pytest
from asn1crypto import x509
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.pdf_embedded import PdfSignatureStatus
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
)

from hsdt.signing import testpki
from hsdt.signing.testpki import SOFTWARE_P12_PASSPHRASE, Person, TestPKI, TestPKIError

PEOPLE = (
    Person("GV-001", "Nguyễn Thị Hồng Nhung"),
    Person("GV-002", "Trần Văn Đức"),
    Person("HT-001", "Lê Quang Vĩnh"),
)
HSM_PERSON = "HT-001"
SCHOOL_CODE = "LC-THPT-01"
SCHOOL_NAME = "Trường THPT số 1 Lào Cai"


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("testpki")


@pytest.fixture(scope="module")
def pki(pki_dir: Path) -> TestPKI:
    return testpki.provision(pki_dir, PEOPLE, SCHOOL_CODE, SCHOOL_NAME, hsm_people={HSM_PERSON})


@pytest.fixture(scope="module")
def served(pki: TestPKI) -> Iterator[TestPKI]:
    with testpki.serve(pki) as p:
        yield p


@pytest.fixture(scope="module")
def tiny_pdf() -> bytes:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    buf = BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def _vc(pki: TestPKI) -> ValidationContext:
    return ValidationContext(
        trust_roots=pki.trust_roots(), allow_fetching=True, revocation_mode="require"
    )


def _sign(pdf: bytes, signer: signers.Signer, timestamper: HTTPTimeStamper | None = None) -> bytes:
    meta = signers.PdfSignatureMetadata(
        field_name="Sig1", subfilter=SigSeedSubFilter.PADES, md_algorithm="sha256"
    )
    out = signers.sign_pdf(
        IncrementalPdfFileWriter(BytesIO(pdf)), meta, signer=signer, timestamper=timestamper
    )
    return out.getvalue()


def _validate_pdf(pki: TestPKI, signed: bytes) -> PdfSignatureStatus:
    """Validate the first signature online (fetching, revocation required), then close the
    validation contexts' HTTP sessions inside the loop that opened them."""

    async def run() -> PdfSignatureStatus:
        sig = PdfFileReader(BytesIO(signed)).embedded_signatures[0]
        vc, ts_vc = _vc(pki), _vc(pki)
        try:
            return await async_validate_pdf_signature(
                sig, signer_validation_context=vc, ts_validation_context=ts_vc
            )
        finally:
            await vc.aclose()
            await ts_vc.aclose()

    return asyncio.run(run())


def _assert_valid_bt(pki: TestPKI, signed: bytes, expected: x509.Certificate) -> None:
    status = _validate_pdf(pki, signed)
    assert status.signing_cert.dump() == expected.dump()
    assert status.intact, status.pretty_print_details()
    assert status.valid, status.pretty_print_details()
    assert status.trusted, status.pretty_print_details()
    assert status.bottom_line, status.pretty_print_details()
    ts = status.timestamp_validity
    assert ts is not None, "no signature timestamp from the served TSA"
    assert ts.intact and ts.valid and ts.trusted, status.pretty_print_details()


def _validate_cert(pki: TestPKI, ident: testpki.Identity) -> None:
    async def run() -> None:
        vc = _vc(pki)
        validator = CertificateValidator(
            ident.cert, intermediate_certs=list(ident.chain), validation_context=vc
        )
        try:
            await validator.async_validate_usage({"non_repudiation"})
        finally:
            await vc.aclose()

    asyncio.run(run())


# --- provisioning ---------------------------------------------------------------------------


def test_identities_and_subjects(pki: TestPKI) -> None:
    for person in PEOPLE:
        ident = pki.identity(person.person_id)
        assert ident.kind == "person"
        assert ident.full_name == person.full_name
        attrs = {a["type"].native: a["value"] for rdn in ident.cert.subject.chosen for a in rdn}
        assert attrs["common_name"].name == "utf8_string"
        assert attrs["common_name"].native == person.full_name
        assert attrs["user_id"].native == person.person_id
        assert ident.cert.key_usage_value.native == {"digital_signature", "non_repudiation"}
        assert ident.fingerprint_sha256 == hashlib.sha256(ident.cert.dump()).hexdigest()
        assert ident.chain[0].dump() == pki.intermediate.dump()
        if person.person_id == HSM_PERSON:
            assert ident.on_hsm and ident.pkcs11_key_label == HSM_PERSON
            assert ident.p12_path is None
        else:
            assert not ident.on_hsm and ident.p12_path is not None and ident.p12_path.is_file()

    seal = pki.seal
    assert seal.on_hsm and seal.pkcs11_key_label == "seal"
    subj = seal.cert.subject.native
    assert subj["organization_name"] == SCHOOL_NAME == subj["common_name"]
    assert subj["serial_number"] == SCHOOL_CODE
    assert seal.binding == f"school:{SCHOOL_CODE}"

    # no private key of an HSM identity was ever written to disk
    assert not list((pki.workdir / "keys").glob("seal.key*"))
    hsm_label = json.loads(pki.manifest_path.read_text())["identities"][HSM_PERSON]["label"]
    assert not list((pki.workdir / "keys").glob(f"{hsm_label}.key*"))


def test_urls_in_certificates(pki: TestPKI) -> None:
    assert pki.base_url == f"http://127.0.0.1:{pki.port}"
    for ident in pki.identities():
        if ident.name == "untrusted":
            continue
        ocsp_urls = ident.cert.ocsp_urls
        assert ocsp_urls == [pki.ocsp_url], ident.name
        issuers = [
            d["access_location"].native
            for d in ident.cert.authority_information_access_value
            if d["access_method"].native == "ca_issuers"
        ]
        assert issuers and all(u.startswith(pki.base_url) for u in issuers)
        crl_urls = [dp.url for dp in ident.cert.crl_distribution_points]
        assert crl_urls == [pki.crl_url], ident.name
    tsa = pki.tsa_cert()
    eku = next(
        e
        for e in tsa["tbs_certificate"]["extensions"]
        if e["extn_id"].native == "extended_key_usage"
    )
    assert eku["critical"].native is True
    assert eku["extn_value"].native == ["time_stamping"]


def test_negative_cases(pki: TestPKI) -> None:
    now = dt.datetime.now(dt.UTC)
    first = PEOPLE[0].person_id
    for name in testpki.NEGATIVE_CASES:
        if name == "weak_ec" and pki.weak_ec_skipped:
            continue
        ident = pki.identity(name)
        assert ident.person_id == first and ident.binding == first
        assert ident.p12_path is not None and ident.p12_path.is_file()
    assert pki.identity("expired").cert.not_valid_after < now
    assert pki.identity("not_yet_valid").cert.not_valid_before > now
    assert pki.identity("weak_rsa").cert.public_key.bit_size == 1024
    assert pki.weak_ec_skipped is None, pki.weak_ec_skipped
    assert pki.identity("weak_ec").cert.public_key.curve[1] == "secp224r1"
    assert pki.identity("ec_p256_ok").cert.public_key.curve[1] == "secp256r1"
    untrusted = pki.identity("untrusted")
    assert untrusted.cert.issuer != pki.intermediate.subject
    assert untrusted.chain[0].subject == untrusted.cert.issuer
    roots = {c.dump() for c in pki.trust_roots()}
    assert untrusted.chain[0].dump() not in roots
    # every normal window covers the clock with a margin of about a day
    for ident in (pki.seal, *pki.people(), pki.identity("ec_p256_ok")):
        assert ident.cert.not_valid_before < now - dt.timedelta(hours=20)
        assert ident.cert.not_valid_after > now + dt.timedelta(days=700)


def test_bindings(pki: TestPKI) -> None:
    bindings = pki.bindings()
    assert json.loads(pki.bindings_path.read_text("utf-8")) == bindings
    assert bindings[pki.seal.fingerprint_sha256] == f"school:{SCHOOL_CODE}"
    for ident in pki.identities():
        assert bindings[ident.fingerprint_sha256] == ident.binding
    assert len(bindings) == len(pki.identities())


def test_warm_reprovision_reuses(pki: TestPKI, pki_dir: Path) -> None:
    t0 = time.perf_counter()
    again = testpki.provision(pki_dir, PEOPLE, SCHOOL_CODE, SCHOOL_NAME, hsm_people={HSM_PERSON})
    assert time.perf_counter() - t0 < 0.5
    assert again.port == pki.port
    assert again.bindings() == pki.bindings()


def test_provision_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hsm_people"):
        testpki.provision(tmp_path, PEOPLE, SCHOOL_CODE, SCHOOL_NAME, hsm_people={"nobody"})
    with pytest.raises(ValueError, match="reserved"):
        testpki.provision(tmp_path, [Person("seal", "X")], SCHOOL_CODE, SCHOOL_NAME)


# --- serving and signing --------------------------------------------------------------------


def test_software_key_pades_bt(served: TestPKI, tiny_pdf: bytes) -> None:
    ident = served.identity("GV-001")
    assert ident.p12_path is not None
    signer = signers.SimpleSigner.load_pkcs12(
        str(ident.p12_path), passphrase=SOFTWARE_P12_PASSPHRASE
    )
    assert signer is not None, f"could not open {ident.p12_path}"
    signed = _sign(tiny_pdf, signer, HTTPTimeStamper(served.tsa_url))
    _assert_valid_bt(served, signed, ident.cert)


def test_hsm_key_pades_bt(served: TestPKI, tiny_pdf: bytes) -> None:
    import pkcs11

    ident = served.identity(HSM_PERSON)
    served.activate_softhsm()
    session = open_pkcs11_session(
        served.pkcs11_lib,
        token_criteria=TokenCriteria(label=served.token_label),
        user_pin=served.user_pin,
    )
    try:
        # the key is in the token, sensitive and not extractable
        priv = session.get_key(
            object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=ident.pkcs11_key_label
        )
        assert priv[pkcs11.Attribute.SENSITIVE] is True
        assert priv[pkcs11.Attribute.EXTRACTABLE] is False
        assert priv[pkcs11.Attribute.ID] == ident.pkcs11_key_id
        signer = PKCS11Signer(
            session,
            key_label=ident.pkcs11_key_label,
            cert_label=ident.pkcs11_key_label,
            ca_chain=list(ident.chain),
        )
        signed = _sign(tiny_pdf, signer, HTTPTimeStamper(served.tsa_url))
    finally:
        session.close()
    _assert_valid_bt(served, signed, ident.cert)


def test_ec_p256_is_accepted(served: TestPKI) -> None:
    _validate_cert(served, served.identity("ec_p256_ok"))


def test_revoked_is_refused(served: TestPKI) -> None:
    ident = served.identity("revoked")
    assert testpki.ocsp_status(served, ident) == "revoked"
    assert testpki.ocsp_status(served, served.identity("GV-002")) == "good"
    with pytest.raises(RevokedError):
        _validate_cert(served, ident)


def test_revoked_signature_is_not_trusted(served: TestPKI, tiny_pdf: bytes) -> None:
    ident = served.identity("revoked")
    assert ident.p12_path is not None
    signer = signers.SimpleSigner.load_pkcs12(
        str(ident.p12_path), passphrase=SOFTWARE_P12_PASSPHRASE
    )
    assert signer is not None
    status = _validate_pdf(served, _sign(tiny_pdf, signer))
    assert status.intact and status.valid
    assert not status.trusted
    assert not status.bottom_line
    assert status.revoked


def test_expired_and_not_yet_valid_are_refused(served: TestPKI) -> None:
    with pytest.raises(ExpiredError):
        _validate_cert(served, served.identity("expired"))
    with pytest.raises(NotYetValidError):
        _validate_cert(served, served.identity("not_yet_valid"))


def test_untrusted_is_refused(served: TestPKI) -> None:
    with pytest.raises((PathBuildingError, PathValidationError)):
        _validate_cert(served, served.identity("untrusted"))


def test_crl_lists_revoked(served: TestPKI) -> None:
    import urllib.request

    from asn1crypto import crl

    with urllib.request.urlopen(served.crl_url, timeout=10) as resp:
        cl = crl.CertificateList.load(resp.read())
    serials = {r["user_certificate"].native for r in cl["tbs_cert_list"]["revoked_certificates"]}
    assert served.identity("revoked").cert.serial_number in serials
    assert served.identity("GV-001").cert.serial_number not in serials
    assert cl["tbs_cert_list"]["next_update"].native > dt.datetime.now(dt.UTC)


def test_unreachable_component_is_named(pki: TestPKI) -> None:
    # nothing listens on the copy's port: the error must say which component failed
    wrong = dataclasses.replace(pki, port=testpki._free_loopback_port())
    with pytest.raises(TestPKIError, match="CRL distribution point"):
        testpki.check_services(wrong, timeout=2)


def test_second_server_on_same_port_fails_clearly(served: TestPKI) -> None:
    with pytest.raises(TestPKIError, match="Animator could not listen"), testpki.serve(served):
        pass


def test_subprocess_animator(pki: TestPKI) -> None:
    # the CLI route (`certomancer --config … animate --aiohttp`), on another free port so it
    # can run while the module's threaded server holds the PKI's own port
    other = dataclasses.replace(pki, port=testpki._free_loopback_port())
    with testpki.serve(other, mode="subprocess"):
        assert testpki.ocsp_status(other, other.identity("revoked")) == "revoked"
