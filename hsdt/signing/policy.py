"""The rules a signature must satisfy before it is made (Thông tư 15/2025: check first).

Two independent questions, each answered in one place:
1. the certificate: bound to the assigned person, strong enough, within its validity,
   trusted and not revoked (checked online, revocation required);
2. the plan: this field's stage is open, it is not signed yet, nothing is locked, and the
   record's data lock is intact.
Every refusal is a :class:`SigningRefused` with a Vietnamese reason and a stable code.
"""

from __future__ import annotations

from datetime import datetime

from asn1crypto import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
)

from hsdt.domain.errors import SigningRefused
from hsdt.domain.plans import FieldAssignment, ResolvedPlan
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.keys import fingerprint

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


def check_key_strength(cert: x509.Certificate) -> None:
    pk = cert.public_key
    algo = pk.algorithm
    bits = pk.bit_size
    if algo == "rsa" and bits < MIN_RSA_BITS:
        raise SigningRefused(
            f"Khoá RSA {bits} bit quá yếu: quy định yêu cầu tối thiểu {MIN_RSA_BITS} bit.",
            code="weak_key")
    if algo == "ec" and bits < MIN_EC_BITS:
        raise SigningRefused(
            f"Khoá ECDSA {bits} bit quá yếu: quy định yêu cầu tối thiểu {MIN_EC_BITS} bit.",
            code="weak_key")
    if algo not in ("rsa", "ec"):
        raise SigningRefused(f"Loại khoá {algo} không được chấp nhận (chỉ RSA hoặc ECDSA).",
                             code="weak_key")


def check_validity_period(cert: x509.Certificate, now: datetime) -> None:
    nb = cert["tbs_certificate"]["validity"]["not_before"].native
    na = cert["tbs_certificate"]["validity"]["not_after"].native
    if now < nb:
        raise SigningRefused(f"Chứng thư số chưa có hiệu lực (hiệu lực từ {nb:%d/%m/%Y %H:%M} UTC).",
                             code="cert_not_yet_valid")
    if now > na:
        raise SigningRefused(f"Chứng thư số đã hết hạn ngày {na:%d/%m/%Y}.", code="cert_expired")


def check_binding(cert: x509.Certificate, field: FieldAssignment,
                  bindings: CertificateBindings) -> None:
    owner = bindings.owner(fingerprint(cert))
    if owner is None:
        raise SigningRefused(
            "Chứng thư số này chưa được đăng ký cho người nào trong trường; "
            "quản trị viên cần gắn chứng thư với tài khoản trước khi ký.", code="cert_unbound")
    if owner != field.assignee:
        raise SigningRefused(
            f"Chứng thư số thuộc về «{owner}», nhưng ô «{field.label}» phải do "
            f"{field.assignee_name} ({field.assignee}) ký. Không ai được ký thay người khác "
            "(Điều 10).", code="cert_not_assignee")


async def check_trust_and_revocation(cert: x509.Certificate, chain: list[x509.Certificate],
                               vc: ValidationContext) -> None:
    """Path to a trust anchor with revocation status required (OCSP or CRL)."""
    validator = CertificateValidator(cert, intermediate_certs=chain, validation_context=vc)
    try:
        await validator.async_validate_usage(key_usage={"non_repudiation"})
    except RevokedError as exc:
        raise SigningRefused(f"Chứng thư số đã bị thu hồi: {exc}", code="cert_revoked") from None
    except ExpiredError:
        raise SigningRefused("Chứng thư số (hoặc chứng thư của CA) đã hết hạn.",
                             code="cert_expired") from None
    except NotYetValidError:
        raise SigningRefused("Chứng thư số chưa có hiệu lực.", code="cert_not_yet_valid") from None
    except PathBuildingError:
        raise SigningRefused("Chứng thư số không dẫn về CA gốc tin cậy nào.",
                             code="cert_untrusted") from None
    except InvalidCertificateError as exc:
        raise SigningRefused(f"Chứng thư số không dùng được để ký: {exc}",
                             code="cert_invalid") from None
    except PathValidationError as exc:
        raise SigningRefused(f"Không xác minh được chứng thư số: {exc}",
                             code="cert_unverifiable") from None


def check_plan_order(plan: ResolvedPlan, field: FieldAssignment, filled: list[str]) -> None:
    """The field's stage must be the open one, and nothing may be locked or sealed yet."""
    names = set(filled)
    in_plan = {f.name for f in plan.fields}
    if names - in_plan:
        raise SigningRefused("Hồ sơ đã được niêm phong dài hạn (B-LTA) hoặc có chữ ký ngoài kế "
                             "hoạch ký; không thể ký thêm.", code="sealed")
    for f in plan.fields:
        if f.name in names and f.lock_all:
            raise SigningRefused(
                f"{f.assignee_name} ({f.label}) đã ký khoá hồ sơ; không thể ký thêm.",
                code="locked")
    if field.name in names:
        raise SigningRefused(f"Ô «{field.label}» đã được ký.", code="already_signed")
    for earlier in plan.fields:
        if earlier.stage < field.stage and earlier.name not in names:
            raise SigningRefused(
                f"Chưa đến lượt ký: «{earlier.label}» ({earlier.assignee_name}) phải ký trước "
                f"«{field.label}».", code="out_of_order")
