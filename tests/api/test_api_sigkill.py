"""A worker killed (SIGKILL) in the middle of a service task loses nothing and stores
nothing twice: the finish task is paused after the archive stored the sealed record and
before the database knew, the whole worker is killed, the broker redelivers, and the other
worker finds the object already archived."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from hsdt.db.models import ArchiveEntry, DocumentState
from hsdt.domain.bundles import bundle_json
from hsdt.domain.sample import sample_bundle
from hsdt.service.dispatch import CeleryDispatcher

from .service_world import build_service, serve_app, worker_env
from .test_api_flow import sign_class
from .test_api_workers import wait_for

STUDENTS = 4


def test_worker_killed_after_archiving_before_commit(world, new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from workers.workerkit import open_archive, read_marker, running, stored_objects

    bundle = sample_bundle(seed=5, students=STUDENTS)
    db_url = new_database("postgresql")
    marker = tmp_path / "paused.json"
    with running("amqp", tmp_path) as run:
        svc = build_service(world.pki, bundle, tmp_path / "svc", db_url=db_url,
                            dispatcher=CeleryDispatcher(run.app))
        pause = {"HSDT_WORKERS_TEST_PAUSE": "finish:archived", "HSDT_WORKERS_TEST_PAUSE_FILE": str(marker),
                 "HSDT_WORKERS_TEST_PAUSE_SECONDS": "120"}
        run.workers.start(2, extra_env={**worker_env(svc, db_url), **pause})
        try:
            with serve_app(svc.app) as url:
                svc.url = url
                svc.import_and_render(bundle_json(bundle))
                wait_for(svc, DocumentState.CERTIFIED, STUDENTS)
                sign_class(svc)
                paused = read_marker(marker, timeout=120)
                run.workers.by_pgid(paused["pgid"]).kill()
                wait_for(svc, DocumentState.ARCHIVED, STUDENTS, timeout=180)
        except BaseException:
            print(run.workers.logs())
            raise
        finally:
            svc.ctx.close()
        assert run.broker.backlog().get("queued", 0) == 0
    with svc.sessions() as s:
        per_record = dict(s.execute(select(ArchiveEntry.record_id, func.count())
                                    .group_by(ArchiveEntry.record_id)).all())
    assert len(per_record) == STUDENTS and set(per_record.values()) == {1}
    assert paused["record_id"] in per_record
    archive = open_archive(svc.root / "archive", world.pki)
    try:
        assert len(archive.entries()) == STUDENTS
    finally:
        archive.close()
    assert len(stored_objects(svc.root / "archive", "records")) == STUDENTS
