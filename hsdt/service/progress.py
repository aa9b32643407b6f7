"""Progress (Điều 11.3): per class, school or district, how many records wait where, for whom."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hsdt.db.models import (
    Document,
    DocumentRevision,
    OrgUnit,
    SchoolClass,
    SignatureStep,
    StepState,
    User,
)
from hsdt.db.scope import Action, _subtree_of
from hsdt.service.errors import NotFound
from hsdt.service.guard import require


def progress(session: Session, actor: User, *, unit_id: int | None = None, class_id: int | None = None,
             ip: str | None = None) -> dict[str, Any]:
    target = session.get(SchoolClass, class_id) if class_id is not None else (
        session.get(OrgUnit, unit_id) if unit_id is not None else None)
    if target is None:
        raise NotFound("Không có đơn vị hoặc lớp này.")
    require(session, actor, Action.READ_PROGRESS, target, ip=ip)
    latest = (select(DocumentRevision.document_id, func.max(DocumentRevision.revision).label("rev"))
              .group_by(DocumentRevision.document_id).subquery())
    docs = (select(DocumentRevision.id, DocumentRevision.state, DocumentRevision.stage)
            .join(latest, (latest.c.document_id == DocumentRevision.document_id)
                  & (latest.c.rev == DocumentRevision.revision))
            .join(Document, Document.id == DocumentRevision.document_id))
    if class_id is not None:
        docs = docs.where(Document.class_id == class_id)
    else:
        units = _subtree_of(select(OrgUnit.id).where(OrgUnit.id == unit_id))
        docs = docs.where(Document.school_id.in_(units))
    rows = session.execute(docs).all()
    by_state = Counter(r.state.value for r in rows)
    open_rev = {r.id: r.stage for r in rows if r.stage is not None}
    waiting: Counter[tuple[int, str, str, str]] = Counter()
    if open_rev:
        steps = session.execute(
            select(SignatureStep.revision_id, SignatureStep.stage, SignatureStep.field_name,
                   SignatureStep.role, User.full_name)
            .outerjoin(User, User.id == SignatureStep.assignee_user_id)
            .where(SignatureStep.revision_id.in_(list(open_rev)), SignatureStep.state == StepState.WAITING))
        for s in steps:
            if open_rev.get(s.revision_id) == s.stage:
                waiting[(s.stage, s.field_name, s.role.value, s.full_name or "(chưa gán tài khoản)")] += 1
    return {
        "records": len(rows),
        "by_state": dict(sorted(by_state.items())),
        "waiting": [{"stage": st, "field": f, "role": r, "for": who, "records": n}
                    for (st, f, r, who), n in sorted(waiting.items())],
    }
