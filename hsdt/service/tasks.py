"""Celery tasks of the service: one revision, one step, idempotent by the revision's state.

``render_revision``, ``certify_revision`` and ``finish_revision`` (B-LTA seal + archive) are
sent by :class:`hsdt.service.dispatch.CeleryDispatcher` after the request's commit. Each runs
one :func:`hsdt.service.guard.transaction` that locks the revision's row (PostgreSQL
``SELECT … FOR UPDATE``; SQLite serialises writers anyway), so a task delivered twice, or a
render racing a certification, finds the work done and does nothing. They inherit
late acknowledgement and retry-on-transient-fault from :class:`hsdt.workers.tasks.HsdtTask`.

The worker's :class:`ServiceContext` comes from the environment (:func:`worker_context`):
``HSDT_DATABASE_URL``, ``HSDT_WORK_DIR``, ``HSDT_ARCHIVE_ROOT`` and, for the embedded demo and
the tests, ``HSDT_TEST_PKI_DIR`` (the test PKI's trust anchors, TSA and the school seal on
SoftHSM2).
"""

from __future__ import annotations

from celery import shared_task

from hsdt.service import records
from hsdt.service.context import ServiceContext
from hsdt.service.guard import transaction
from hsdt.workers.tasks import HsdtTask

_context: ServiceContext | None = None


def worker_context() -> ServiceContext:
    """This process's service context, built once from the environment (as ``hsdt serve``'s)."""
    global _context
    if _context is None:
        from hsdt.service.config import context_from_env

        _context = context_from_env(migrate=False)
    return _context


def _run(step: str, revision_id: int) -> str:
    ctx = worker_context()
    state = ""
    for run in records.STEPS[step]:  # one transaction each: what is done is committed before the next part
        with transaction(ctx.sessions) as session:
            state = run(session, ctx, revision_id).state.value
    return state


@shared_task(name="hsdt.service.render_revision", base=HsdtTask, bind=True)
def render_revision(self: HsdtTask, revision_id: int) -> str:
    return _run("render", revision_id)


@shared_task(name="hsdt.service.certify_revision", base=HsdtTask, bind=True)
def certify_revision(self: HsdtTask, revision_id: int) -> str:
    return _run("certify", revision_id)


@shared_task(name="hsdt.service.finish_revision", base=HsdtTask, bind=True)
def finish_revision(self: HsdtTask, revision_id: int) -> str:
    return _run("finish", revision_id)


@shared_task(name="hsdt.service.poll_remote_approvals", base=HsdtTask, bind=True)
def poll_remote_approvals(self: HsdtTask) -> dict[str, str]:
    """The beat's job: ask the providers about batches whose poll is due (with backoff)."""
    from hsdt.service.remote_signing import poll_due

    return {k: v.value for k, v in poll_due(worker_context()).items()}
