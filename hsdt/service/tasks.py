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

import os
from pathlib import Path
from typing import Any

from celery import shared_task

from hsdt.service import records
from hsdt.service.context import ServiceContext
from hsdt.service.guard import transaction
from hsdt.workers.tasks import HsdtTask

_context: ServiceContext | None = None


def worker_context() -> ServiceContext:
    """This process's service context, built once from the environment."""
    global _context
    if _context is None:
        from hsdt.archive.factory import open_store
        from hsdt.archive.ingest import Archive
        from hsdt.db.engine import make_engine, session_factory
        from hsdt.demo import open_identity
        from hsdt.signing import testpki
        from hsdt.signing.trust import load_trust_roots
        from hsdt.signing.verification import Verifier
        from hsdt.workers.context import archive_lock
        from hsdt.workers.files import exclusive

        archive_root = Path(os.environ.get("HSDT_ARCHIVE_ROOT", "var/archive"))
        roots = load_trust_roots([])
        tsa_url = os.environ.get("HSDT_TSA_URL", "")
        seal_keys: dict[str, Any] = {}
        pki_dir = os.environ.get("HSDT_TEST_PKI_DIR")
        if pki_dir:
            pki = testpki.load(Path(pki_dir))
            roots += pki.trust_roots()
            tsa_url = tsa_url or pki.tsa_url

            def open_seal() -> Any:
                with exclusive(pki.softhsm_conf.parent / "login.lock"):
                    return open_identity(pki, pki.seal)

            seal_keys[pki.school_code] = open_seal

        def archive() -> Archive:
            store, retain_until = open_store(archive_root)
            verifier = Verifier(roots, None, online=False)
            return Archive(store, archive_root, verifier, retain_until=retain_until)

        _context = ServiceContext(
            sessions=session_factory(make_engine()), trust_roots=roots, tsa_url=tsa_url,
            workspace_root=Path(os.environ.get("HSDT_WORK_DIR", "var/work")), seal_keys=seal_keys,
            archive_factory=archive, archive_lock=lambda: archive_lock(archive_root))
    return _context


def _run(step: str, revision_id: int) -> str:
    ctx = worker_context()
    run = {"render": records.render_revision, "certify": records.certify_revision,
           "finish": records.finish_revision}[step]
    with transaction(ctx.sessions) as session:
        return run(session, ctx, revision_id).state.value


@shared_task(name="hsdt.service.render_revision", base=HsdtTask, bind=True)
def render_revision(self: HsdtTask, revision_id: int) -> str:
    return _run("render", revision_id)


@shared_task(name="hsdt.service.certify_revision", base=HsdtTask, bind=True)
def certify_revision(self: HsdtTask, revision_id: int) -> str:
    return _run("certify", revision_id)


@shared_task(name="hsdt.service.finish_revision", base=HsdtTask, bind=True)
def finish_revision(self: HsdtTask, revision_id: int) -> str:
    return _run("finish", revision_id)
