"""Where the heavy steps run: in the request (embedded default) or on Celery workers.

Rendering, the school seal's certification and the final B-LTA seal + archive take tens of
milliseconds to a second per record; with workers they leave the request and spread over
processes, sent only once the request's transaction has committed
(:func:`hsdt.workers.commit.enqueue_after_commit`). Embedded, they run in the request's own
transaction, so the answer already shows the result. Either way the steps are the same
functions of :mod:`hsdt.service.records`, idempotent by the revision's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from celery import Celery

    from hsdt.service.context import ServiceContext

STEPS = ("render", "certify", "finish")
TASK_NAMES = {step: f"hsdt.service.{step}_revision" for step in STEPS}


class Dispatcher(Protocol):
    background: bool

    def send(self, session: Session, step: str, revision_ids: Sequence[int]) -> None: ...


class InlineDispatcher:
    """Runs each step at once, inside the caller's transaction."""

    background = False

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def send(self, session: Session, step: str, revision_ids: Sequence[int]) -> None:
        from hsdt.service.records import STEPS

        for rid in revision_ids:
            for run in STEPS[step]:
                run(session, self.ctx, rid)


class CeleryDispatcher:
    """One task per revision and step, sent after the commit."""

    background = True

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send(self, session: Session, step: str, revision_ids: Sequence[int]) -> None:
        from hsdt.workers.commit import enqueue_after_commit

        for rid in revision_ids:
            enqueue_after_commit(self.app.signature(TASK_NAMES[step], args=(rid,)), session)
