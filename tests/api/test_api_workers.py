"""A class of 40 through the API with two worker processes on Redis, on RabbitMQ, and on the
embedded default; the database ends the same in what it records."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hsdt.db.models import ArchiveEntry, Document, DocumentRevision, DocumentState, SignatureStep
from hsdt.domain.bundles import bundle_json
from hsdt.domain.sample import sample_bundle
from hsdt.service.dispatch import CeleryDispatcher

from .service_world import Service, build_service, serve_app, worker_env
from .test_api_flow import sign_class

STUDENTS = 40
_results: dict[str, Any] = {}


def wait_for(svc: Service, state: DocumentState, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with svc.sessions() as s:
            states = list(s.scalars(select(DocumentRevision.state)))
        if sum(1 for x in states if x is state) >= count:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"only {states.count(state)}/{count} revisions reached {state.value}: {states}")
        time.sleep(0.2)


def recorded(svc: Service) -> dict[str, Any]:
    """What the database records, without what differs by nature (times, ids, signature bytes)."""
    with svc.sessions() as s:
        docs = sorted((d.record_id, d.student_code) for d in s.scalars(select(Document)))
        # data_sha256 is left out: the records carry their lock, whose time differs per run.
        revs = sorted((r.document.record_id, r.revision, r.state.value)
                      for r in s.scalars(select(DocumentRevision)))
        steps = sorted((st.revision.document.record_id, st.field_name, st.stage, st.state.value,
                        st.cert_fingerprint) for st in s.scalars(select(SignatureStep)))
        entries = sorted((e.record_id, e.revision, e.superseded_by is None)
                         for e in s.scalars(select(ArchiveEntry)))
    return {"documents": docs, "revisions": revs, "steps": steps, "archive": entries}


@pytest.mark.parametrize("transport", ["embedded", "redis", "amqp"])
def test_class_of_40_through_the_api(transport: str, world, new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from workers.workerkit import running

    bundle = sample_bundle(seed=5, students=STUDENTS)
    db_url = new_database("postgresql")
    with running(transport, tmp_path) as run:
        dispatcher = None if transport == "embedded" else CeleryDispatcher(run.app)
        svc = build_service(world.pki, bundle, tmp_path / "svc", db_url=db_url, dispatcher=dispatcher)
        if transport != "embedded":
            run.workers.start(2, extra_env=worker_env(svc, db_url))
        try:
            with serve_app(svc.app) as url:
                svc.url = url
                svc.import_and_render(bundle_json(bundle))
                wait_for(svc, DocumentState.CERTIFIED, STUDENTS)
                sign_class(svc)
                wait_for(svc, DocumentState.ARCHIVED, STUDENTS)
        except BaseException:
            print(run.workers.logs())
            raise
        finally:
            svc.ctx.close()
    _results[transport] = recorded(svc)
    assert len(_results[transport]["archive"]) == STUDENTS
    for other, seen in _results.items():
        assert seen == _results[transport], f"{transport} and {other} recorded different things"
