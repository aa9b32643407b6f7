"""Every refusal of the signing service (issue Build 4), each with its reason."""

from __future__ import annotations

import io

import pikepdf
import pytest
from conftest import World

from hsdt.domain.errors import SigningRefused
from hsdt.domain.plans import Role
from hsdt.signing.record_state import read_record
from hsdt.workflow import render


def _after_seal(world: World) -> tuple[bytes, str]:
    """A record certified by the school, and the homeroom teacher's subject field."""
    rec = world.records[1]
    pdf = world.sign_until(rec, stop=lambda f: f.role is not Role.SCHOOL_SEAL)
    homeroom = rec.bundle.class_.homeroom_teacher_id
    field = next(f.name for f in read_record(pdf).plan.fields
                 if f.role is Role.SUBJECT_TEACHER and f.assignee == homeroom)
    return pdf, field


def _refused(world: World, pdf: bytes, field: str, key: str, code: str, text: str) -> None:
    with pytest.raises(SigningRefused) as info:
        world.signer.sign(pdf, field, world.key(key))
    assert info.value.code == code, info.value.message
    assert text in info.value.message


def test_out_of_order_is_refused(world: World) -> None:
    rec = world.records[1]
    pdf = render(rec)
    hr = rec.bundle.class_.homeroom_teacher_id
    _refused(world, pdf, "homeroom", hr, "out_of_order", "Chưa đến lượt ký")
    pdf, _ = _after_seal(world)
    _refused(world, pdf, "homeroom", hr, "out_of_order", "phải ký trước")
    _refused(world, pdf, "principal", rec.bundle.school.principal_id, "out_of_order", "")


def test_certificate_of_another_person_is_refused(world: World) -> None:
    pdf, field = _after_seal(world)
    other = next(t.id for t in world.records[1].bundle.teachers
                 if t.id not in (world.records[1].bundle.class_.homeroom_teacher_id,))
    _refused(world, pdf, field, other, "cert_not_assignee", "Không ai được ký thay")
    # the school seal cannot sign a teacher's field either
    _refused(world, pdf, field, "seal", "cert_not_assignee", "Điều 10")


@pytest.mark.parametrize(("identity", "code", "text"), [
    ("expired", "cert_expired", "hết hạn"),
    ("not_yet_valid", "cert_not_yet_valid", "chưa có hiệu lực"),
    ("revoked", "cert_revoked", "thu hồi"),
    ("weak_rsa", "weak_key", "RSA 1024"),
    ("weak_ec", "weak_key", "ECDSA 224"),
    ("untrusted", "cert_untrusted", "CA gốc tin cậy"),
])
def test_bad_certificates_are_refused(world: World, identity: str, code: str, text: str) -> None:
    pdf, field = _after_seal(world)
    _refused(world, pdf, field, identity, code, text)


def test_ec_p256_is_accepted(world: World) -> None:
    pdf, field = _after_seal(world)
    signed = world.signer.sign(pdf, field, world.key("ec_p256_ok"))
    assert field in read_record(signed).filled_fields


def test_already_signed_and_after_lock(world: World) -> None:
    rec = world.records[2]
    pdf = world.sign_until(rec)  # every field, principal last
    hr = rec.bundle.class_.homeroom_teacher_id
    _refused(world, pdf, "homeroom", hr, "locked", "khoá hồ sơ")
    sealed = world.signer.seal(pdf)
    _refused(world, sealed, "homeroom", hr, "sealed", "niêm phong")


def test_record_whose_data_lock_does_not_match_is_refused(world: World) -> None:
    rec = world.records[1]
    pdf = render(rec)
    # the record is not the one made from the current lock
    with pytest.raises(SigningRefused) as info:
        world.signer.sign(pdf, "seal", world.key("seal"), expected_data_sha256="0" * 64)
    assert info.value.code == "data_lock_mismatch"
    # embedded data altered (a grade changed) while XMP still names the locked digest
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        files = doc.attachments
        raw = files["record.json"].get_file().read_bytes()
        files["record.json"] = pikepdf.AttachedFileSpec(
            doc, raw.replace(b'"days_absent":', b'"days_absent":1'), filename="record.json")
        out = io.BytesIO()
        doc.save(out)
    with pytest.raises(SigningRefused) as info:
        world.signer.sign(out.getvalue(), "seal", world.key("seal"))
    assert info.value.code == "data_lock_mismatch"
    assert "không khớp" in info.value.message


def test_seal_requires_a_complete_plan(world: World) -> None:
    pdf, _ = _after_seal(world)
    with pytest.raises(SigningRefused) as info:
        world.signer.seal(pdf)
    assert info.value.code == "plan_incomplete"


def test_closing_an_invalidated_pkcs11_session_is_quiet() -> None:
    import pkcs11

    from hsdt.signing.keys import SigningKey

    def gone() -> None:
        raise pkcs11.exceptions.SessionHandleInvalid()

    def broken() -> None:
        raise RuntimeError("token on fire")

    SigningKey("pkcs11", None, None, [], _closer=gone).close()  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        SigningKey("pkcs11", None, None, [], _closer=broken).close()  # type: ignore[arg-type]
