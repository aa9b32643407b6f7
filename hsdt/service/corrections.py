"""Corrections of locked data (Điều 11.4): request, the principal's decision, witnesses, apply.

Nothing already signed is changed: the corrected data is a new bundle that supersedes the
old one, and each record whose data changed gets a new revision that supersedes the old —
which stays archived and retrievable. Each step is in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hsdt.db import audit
from hsdt.db.models import (
    Bundle,
    BundleLock,
    Correction,
    CorrectionState,
    CorrectionWitness,
    Document,
    DocumentRevision,
    RoleName,
    User,
    WitnessCapacity,
)
from hsdt.db.scope import Action, can, target_of
from hsdt.domain.bundles import decode_json, lock_bundle, parse_bundle
from hsdt.service.context import ServiceContext
from hsdt.service.errors import Conflict, NotFound, Refused
from hsdt.service.guard import refuse, require
from hsdt.service.records import create_documents


@dataclass(frozen=True)
class WitnessSpec:
    username: str
    capacity: WitnessCapacity


def _correction(session: Session, correction_id: int) -> Correction:
    row = session.get(Correction, correction_id)
    if row is None:
        raise NotFound(f"Không có yêu cầu điều chỉnh {correction_id}.")
    return row


def request(session: Session, ctx: ServiceContext, actor: User, record_id: str, reason: str, *,
            ip: str | None = None) -> Correction:
    doc = session.scalars(select(Document).where(Document.record_id == record_id)).first()
    if doc is None:
        raise NotFound(f"Không có hồ sơ {record_id}.")
    require(session, actor, Action.REQUEST_CORRECTION, doc, ip=ip)
    if not reason or not reason.strip():
        raise Refused("Yêu cầu điều chỉnh phải nêu lý do (Điều 11.4).", code="reason_required")
    latest: DocumentRevision = doc.revisions[-1]
    row = Correction(bundle=latest.bundle, document=doc, reason=reason.strip(), requested_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="request_correction", obj=row, ip=ip, reason=reason.strip(),
                 details={"record_id": record_id, "bundle_id": latest.bundle_id})
    return row


def approve(session: Session, ctx: ServiceContext, actor: User, correction_id: int,
            witnesses: list[WitnessSpec], note: str | None = None, *, ip: str | None = None) -> Correction:
    """The principal permits the correction, naming who witnesses it (a board member and the
    class's homeroom teacher, each of whom must hold that duty)."""
    row = _correction(session, correction_id)
    require(session, actor, Action.APPROVE_CORRECTION, row, ip=ip)
    if row.state is not CorrectionState.REQUESTED:
        raise Conflict(f"Yêu cầu điều chỉnh {row.id} đã được xử lý ({row.state.value}).",
                       code="correction_decided")
    capacities = {w.capacity for w in witnesses}
    missing = set(WitnessCapacity) - capacities
    if missing or len({w.username for w in witnesses}) < len(WitnessCapacity):
        raise refuse(actor, Action.APPROVE_CORRECTION, Refused(
            "Điều chỉnh cần có người chứng kiến: thành viên Ban quản lý HSĐT và giáo viên chủ nhiệm "
            "(Điều 11.4).", code="witnesses_required"), obj=row, ip=ip)
    target = target_of(session, row)
    for w in witnesses:
        user = session.scalars(select(User).where(User.username == w.username)).first()
        if user is None:
            raise Refused(f"Không có tài khoản «{w.username}».", code="witness_unknown")
        decision = can(session, user, Action.WITNESS_CORRECTION, target)
        if w.capacity is WitnessCapacity.HOMEROOM_TEACHER:
            ok = decision.allowed and row.bundle.school_class.homeroom_teacher_id == user.id
        else:  # the HSĐT board member: the school's system administrator, not the teacher again
            ok = decision.allowed and decision.role is RoleName.SCHOOL_ADMIN
        if not ok:
            raise refuse(actor, Action.APPROVE_CORRECTION, Refused(
                f"{user.full_name} không thể chứng kiến với tư cách {w.capacity.value} cho lớp này.",
                code="witness_not_eligible"), obj=row, ip=ip)
        session.add(CorrectionWitness(correction=row, user=user, capacity=w.capacity,
                                      confirmed_at=ctx.clock()))
    row.state = CorrectionState.APPROVED
    row.approved_by_id = actor.id
    row.decided_at = ctx.clock()
    row.decision_note = note
    session.flush()
    audit.record(session, actor=actor, action="approve_correction", obj=row, ip=ip, reason=note,
                 details={"witnesses": [{"username": w.username, "capacity": w.capacity.value}
                                        for w in witnesses]})
    return row


def refuse_correction(session: Session, ctx: ServiceContext, actor: User, correction_id: int, note: str,
                      *, ip: str | None = None) -> Correction:
    row = _correction(session, correction_id)
    require(session, actor, Action.APPROVE_CORRECTION, row, ip=ip)
    if row.state is not CorrectionState.REQUESTED:
        raise Conflict(f"Yêu cầu điều chỉnh {row.id} đã được xử lý.", code="correction_decided")
    row.state, row.approved_by_id, row.decided_at, row.decision_note = (
        CorrectionState.REFUSED, actor.id, ctx.clock(), note)
    session.flush()
    audit.record(session, actor=actor, action="refuse_correction", obj=row, ip=ip, reason=note)
    return row


def apply(session: Session, ctx: ServiceContext, actor: User, correction_id: int, raw: bytes, *,
          ip: str | None = None) -> list[DocumentRevision]:
    """Store the corrected data as a new locked bundle and make the superseding revisions."""
    row = _correction(session, correction_id)
    require(session, actor, Action.APPROVE_CORRECTION, row, ip=ip)
    if row.state is not CorrectionState.APPROVED:
        raise Conflict("Chỉ áp dụng được yêu cầu điều chỉnh đã được phê duyệt.",
                       code="correction_not_approved")
    old: Bundle = row.bundle
    newer = session.scalars(select(Bundle).where(Bundle.supersedes_id == old.id)).first()
    if newer is not None:
        raise Conflict(f"Gói dữ liệu {old.id} đã được điều chỉnh (gói {newer.id}).", code="bundle_superseded")
    bundle = parse_bundle(decode_json(raw, "dữ liệu điều chỉnh"))
    new = Bundle.from_domain(bundle, school=old.school, school_class=old.school_class,
                             revision=old.revision + 1, supersedes=old, imported_by=actor)
    if (new.term, new.school_year) != (old.term, old.school_year):
        raise Refused("Dữ liệu điều chỉnh phải cùng năm học và học kỳ với dữ liệu cũ.",
                      code="correction_scope")
    if new.sha256 == old.sha256:
        raise Refused("Dữ liệu điều chỉnh giống hệt dữ liệu đã khoá.", code="correction_unchanged")
    session.add(new)
    session.flush()
    locked = lock_bundle(bundle, actor.full_name, now=ctx.clock())
    session.add(BundleLock.from_domain(locked.lock, new, actor))
    row.state, row.new_bundle = CorrectionState.APPLIED, new
    session.flush()
    revisions = create_documents(session, actor, new, ip=ip, correction_id=row.id)
    audit.record(session, actor=actor, action="apply_correction", obj=row, ip=ip,
                 details={"new_bundle_id": new.id, "sha256": new.sha256,
                          "revisions": [r.id for r in revisions]})
    return revisions
