"""Writing to the audit log: one call per event, refusals included.

The log answers Điều 11's "recorded in full": who (account and name as it was), what (an
action name and the object it touched), when (UTC), from where (the client's IP), why (the
reason the person gave), and with what result. Entries are only ever added — see
:mod:`hsdt.db.guards` and the initial migration for how the ORM and the database refuse the
rest.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from hsdt.db.models import AuditEntry, Base, User
from hsdt.db.scope import Decision


def object_ref(obj: Base) -> tuple[str, str]:
    """``(table, primary key)`` of a stored object, the form the log refers to objects by."""
    identity = inspect(obj).identity
    if identity is None:
        raise ValueError(f"{type(obj).__name__} chưa có trong cơ sở dữ liệu; flush trước khi ghi nhật ký")
    return obj.__tablename__, "/".join(str(part) for part in identity)


def record(session: Session, *, actor: User | str, action: str, outcome: str = "ok",
           obj: Base | None = None, ip: str | None = None, reason: str | None = None,
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Add one entry to the session (it commits with the change it describes).

    ``actor`` is an account, or a string such as ``"system:seal_worker"`` for the service
    acting on its own.
    """
    object_type = object_id = None
    if obj is not None:
        object_type, object_id = object_ref(obj)
    entry = AuditEntry(
        actor_user_id=actor.id if isinstance(actor, User) else None,
        actor=actor.username if isinstance(actor, User) else actor,
        action=action, outcome=outcome, ip=ip, reason=reason,
        object_type=object_type, object_id=object_id, details=details or {},
    )
    session.add(entry)
    return entry


def record_decision(session: Session, actor: User, decision: Decision, obj: Base | None = None, *,
                    ip: str | None = None, reason: str | None = None,
                    details: dict[str, Any] | None = None) -> AuditEntry:
    """Log a scope decision — especially a refusal, which is evidence in its own right."""
    merged = {"code": decision.code, **(details or {})}
    if decision.role is not None:
        merged["role"] = decision.role.value
    return record(session, actor=actor, action=decision.action.value, outcome=decision.outcome.value,
                  obj=obj, ip=ip, reason=reason, details=merged)
