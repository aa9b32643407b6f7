"""Lock windows (Điều 13): administrators open and close data entry and signing."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from hsdt.db import audit
from hsdt.db.models import LockWindow, OrgUnit, SchoolClass, User, WindowKind
from hsdt.db.scope import Action
from hsdt.domain.schema import Term
from hsdt.service.context import ServiceContext
from hsdt.service.errors import NotFound, Refused
from hsdt.service.guard import require


def open_window(session: Session, ctx: ServiceContext, actor: User, *, kind: WindowKind, school_year: str,
                term: Term, opens_at: datetime, closes_at: datetime, unit_id: int | None = None,
                class_id: int | None = None, reason: str | None = None, ip: str | None = None) -> LockWindow:
    if (unit_id is None) == (class_id is None):
        raise Refused("Khung thời gian gắn với đúng một đơn vị hoặc một lớp.", code="window_scope")
    if opens_at.tzinfo is None or closes_at.tzinfo is None:
        raise Refused("Thời điểm mở/đóng phải có múi giờ (ví dụ +07:00).", code="naive_time")
    if closes_at <= opens_at:
        raise Refused("Thời điểm đóng phải sau thời điểm mở.", code="window_order")
    wanted = unit_id if unit_id is not None else class_id
    target = None
    if wanted is not None and 0 < wanted < 2**31:  # beyond the databases' INTEGER keys: no such row
        target = session.get(OrgUnit, unit_id) if unit_id is not None else session.get(SchoolClass, class_id)
    if target is None:
        raise NotFound("Không có đơn vị hoặc lớp này.")
    require(session, actor, Action.LOCK_WINDOW, target, ip=ip)
    row = LockWindow(kind=kind, org_unit_id=unit_id, class_id=class_id, school_year=school_year, term=term,
                     opens_at=opens_at, closes_at=closes_at, reason=reason, created_by_id=actor.id)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="open_window", obj=row, ip=ip, reason=reason,
                 details={"kind": kind.value, "opens_at": opens_at.isoformat(),
                          "closes_at": closes_at.isoformat()})
    return row


def close_window(session: Session, ctx: ServiceContext, actor: User, window_id: int, *,
                 reason: str | None = None, ip: str | None = None) -> LockWindow:
    row = session.get(LockWindow, window_id)
    if row is None:
        raise NotFound(f"Không có khung thời gian {window_id}.")
    require(session, actor, Action.LOCK_WINDOW, row, ip=ip)
    now = ctx.clock()
    if row.closes_at > now:
        row.closes_at = max(now, row.opens_at + timedelta(seconds=1))
    session.flush()
    audit.record(session, actor=actor, action="close_window", obj=row, ip=ip, reason=reason)
    return row
