"""Send tasks only after the database transaction that asked for them commits.

Why: a task sent inside a transaction can run before the transaction commits (it then reads
rows that are not there yet) or after it rolls back (it then acts on something that never
happened). So a request handler that changes a document's state and wants work done calls
:func:`enqueue_after_commit` with its SQLAlchemy session; the signatures wait in
``session.info`` and go to the broker from the session's ``after_commit`` event. A rollback
discards them. Without a session (the CLI, the demo, a beat job) they are sent at once.

The other half of the dual write — the commit succeeded but the broker was unreachable —
is logged here and repaired by re-sending: every task is idempotent, so the workflow's
"what is still pending" query (the DB layer's documents by state) can re-enqueue whatever
has not moved, as often as needed. A transactional outbox table would close the gap
completely; it can replace :func:`_send_pending` without changing any caller.

Limits: only the outermost transaction's commit sends (SQLAlchemy also fires
``after_commit`` when a SAVEPOINT is released; those are ignored). A signature registered
inside a SAVEPOINT that is later rolled back is still sent when the outer transaction
commits; register from the outer transaction (request handlers do).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery.canvas import Signature
    from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

_PENDING = "hsdt.workers.pending"
_HOOKED = "hsdt.workers.hooked"


def enqueue_after_commit(signature: Signature, session: Session | None = None,
                         **options: Any) -> None:
    """``signature.apply_async(**options)`` now, or once ``session`` commits."""
    if session is None:
        signature.apply_async(**options)
        return
    _hook(session)
    session.info.setdefault(_PENDING, []).append((signature, options))


def pending(session: Session) -> int:
    """How many signatures wait for this session's commit (tests, diagnostics)."""
    return len(session.info.get(_PENDING, []))


def _hook(session: Session) -> None:
    if session.info.get(_HOOKED):
        return
    from sqlalchemy import event

    event.listen(session, "after_commit", _send_pending)
    event.listen(session, "after_transaction_end", _discard_on_rollback)
    session.info[_HOOKED] = True


def _send_pending(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a SAVEPOINT was released; the outermost transaction has not committed yet
    batch = session.info.pop(_PENDING, [])
    for signature, options in batch:
        try:
            signature.apply_async(**options)
        except Exception:
            # The transaction has committed: raising here would tell the caller it did not.
            # The state in the database says what still needs doing; re-sending is safe.
            log.exception("committed, but task %s could not be sent; it will be re-sent by "
                          "the pending-work sweep", getattr(signature, "task", signature))


def _discard_on_rollback(session: Session, transaction: SessionTransaction) -> None:
    # after_commit has already emptied the list when the outermost transaction committed;
    # anything left when it ends belongs to a rollback.
    if transaction.parent is None and transaction.nested is False:
        dropped = session.info.pop(_PENDING, [])
        if dropped:
            log.info("transaction rolled back: %d task(s) not sent", len(dropped))
