"""One call to decide, and refusals that reach the audit log whatever else is undone.

Every action of the service starts with :func:`require`: the rule table
(:mod:`hsdt.db.scope`) decides and the caller gets 403 or 404. A refusal is evidence in its
own right (a refused attempt to sign for another person, Điều 10), yet the request that
caused it must leave nothing else behind; so a refusal travels *on the error*, and
:func:`transaction` — the one place a unit of work ends — rolls the request back and then
commits the refusal's audit entry on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session, sessionmaker

from hsdt.db import audit
from hsdt.db.models import AuditEntry, Base, User
from hsdt.db.scope import Action, Decision, Outcome, Target, can, target_of
from hsdt.service.errors import Forbidden, NotFound, ServiceError


def _entry(actor: User | str, action: str, outcome: str, code: str, obj: Base | None,
           ip: str | None, reason: str | None, details: dict[str, Any] | None) -> dict[str, Any]:
    object_type = object_id = None
    if obj is not None and inspect(obj).identity is not None:
        object_type, object_id = audit.object_ref(obj)
    return dict(actor_user_id=actor.id if isinstance(actor, User) else None,
                actor=actor.username if isinstance(actor, User) else actor,
                action=action, outcome=outcome, ip=ip, reason=reason, object_type=object_type,
                object_id=object_id, details={"code": code, **(details or {})})


def refuse(actor: User | str, action: Action | str, error: ServiceError, *, obj: Base | None = None,
           ip: str | None = None, details: dict[str, Any] | None = None,
           outcome: str = "refused") -> ServiceError:
    """Attach the audit entry of a refused ``action`` to ``error``; the caller raises it."""
    name = action.value if isinstance(action, Action) else action
    error.audit_entry = _entry(actor, name, outcome, error.code, obj, ip, error.message, details)
    return error


def require(session: Session, actor: User, action: Action, obj: Base, *, ip: str | None = None
            ) -> Decision:
    """The decision for ``action`` on ``obj``, or a logged :class:`Forbidden` / :class:`NotFound`."""
    return require_target(session, actor, action, target_of(session, obj), obj=obj, ip=ip)


def require_target(session: Session, actor: User, action: Action, target: Target, *, obj: Base | None = None,
                   ip: str | None = None) -> Decision:
    """:func:`require` for a target that is not one stored object (``obj`` names it in the log)."""
    decision = can(session, actor, action, target)
    if decision.allowed:
        return decision
    error: ServiceError
    if decision.outcome is Outcome.NOT_VISIBLE:
        error = NotFound(decision.message, code="not_found")
    else:
        error = Forbidden(decision.message, code=decision.code)
    raise refuse(actor, action, error, obj=obj, ip=ip, outcome=decision.outcome.value)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success; on a refusal, undo everything but the refusal's log."""
    session = sessions()
    try:
        yield session
        session.commit()
    except ServiceError as exc:
        session.rollback()
        entry = getattr(exc, "audit_entry", None)
        if entry is not None:
            session.add(AuditEntry(**entry))
            session.commit()
        raise
    except BaseException as exc:
        if getattr(exc, "keep_changes", False):  # a refused sign-in: its counter and log stay
            session.commit()
        else:
            session.rollback()
        raise
    finally:
        session.close()
