"""Registering and withdrawing the certificates a person signs with (Điều 10).

A certificate is bound to one account by the unit's administrator; the signing rules then
accept it only for that person's fields. A certificate is never deleted: withdrawing it
marks it revoked here (what the CA says is checked at every signature anyway), so that the
records signed with it keep their explanation in the registry and the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from hsdt.db import audit
from hsdt.db.models import Certificate, OrgUnit, RoleAssignment, User
from hsdt.db.scope import Action
from hsdt.domain.errors import SigningRefused
from hsdt.service.errors import Conflict, NotFound, Refused
from hsdt.service.guard import refuse, require
from hsdt.signing import policy


@dataclass(frozen=True)
class CertificateView:
    fingerprint: str
    user_id: int | None
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    revoked: bool
    revocation_reason: str | None


def view(row: Certificate) -> CertificateView:
    return CertificateView(row.fingerprint, row.user_id, row.subject, row.issuer, row.serial, row.not_before,
                           row.not_after, row.revoked, row.revocation_reason)


def home_unit(session: Session, user_id: int) -> OrgUnit:
    """The unit an account belongs to (its first active role's): where its administrators are."""
    unit_id = session.scalars(select(RoleAssignment.org_unit_id).where(
        RoleAssignment.user_id == user_id, RoleAssignment.revoked_at.is_(None))
        .order_by(RoleAssignment.id)).first()
    unit = session.get(OrgUnit, unit_id) if unit_id is not None else None
    if unit is None:
        raise NotFound(f"Không có tài khoản {user_id}.")
    return unit


def bind(session: Session, actor: User, user_id: int, der: bytes, now: datetime, *,
         ip: str | None = None) -> Certificate:
    """Register ``der`` as ``user_id``'s signing certificate; refused if it could never sign."""
    unit = home_unit(session, user_id)
    require(session, actor, Action.BIND_CERTIFICATE, unit, ip=ip)
    owner = session.get(User, user_id)
    assert owner is not None
    try:
        cert = asn1_x509.Certificate.load(der)
        _ = cert.subject.human_friendly, cert.public_key.algorithm
        policy.check_key_strength(cert)
        policy.check_validity_period(cert, now)
        row = Certificate.from_der(der, user=owner, registered_by=actor)
    except SigningRefused as exc:
        raise refuse(actor, Action.BIND_CERTIFICATE, Refused(exc.message, code=exc.code), obj=unit, ip=ip,
                     details={"user_id": user_id}) from None
    except (ValueError, TypeError) as exc:
        raise Refused(f"Chứng thư số gửi lên không đọc được (cần DER, mã hoá base64): {exc}",
                      code="bad_certificate") from None
    existing = session.scalars(select(Certificate).where(Certificate.fingerprint == row.fingerprint)).first()
    if existing is not None:
        if existing.user_id == user_id and not existing.revoked:
            return existing  # registered twice: nothing to do
        raise refuse(actor, Action.BIND_CERTIFICATE, Conflict(
            "Chứng thư số này đã được đăng ký (cho tài khoản khác, hoặc đã bị thu hồi); một chứng thư "
            "chỉ thuộc về một người.", code="certificate_taken"), obj=unit, ip=ip,
            details={"certificate": row.fingerprint})
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="bind_certificate", obj=row, ip=ip,
                 details={"user_id": user_id, "subject": row.subject})
    return row


def withdraw(session: Session, actor: User, fingerprint: str, reason: str, now: datetime, *,
             ip: str | None = None) -> Certificate:
    """Mark a person's certificate revoked here: no further signature with it is accepted."""
    row = session.scalars(select(Certificate).where(Certificate.fingerprint == fingerprint.lower())).first()
    if row is None or row.user_id is None:
        raise NotFound("Không có chứng thư số này.")
    unit = home_unit(session, row.user_id)
    require(session, actor, Action.BIND_CERTIFICATE, unit, ip=ip)
    if not reason.strip():
        raise refuse(actor, Action.BIND_CERTIFICATE, Refused("Cần ghi rõ lý do thu hồi.",
                                                             code="reason_required"), obj=row, ip=ip)
    if not row.revoked:
        row.revoked, row.revoked_at, row.revocation_reason = True, now, reason.strip()[:200]
        session.flush()
        audit.record(session, actor=actor, action="withdraw_certificate", obj=row, ip=ip,
                     reason=reason.strip(), details={"user_id": row.user_id})
    return row
