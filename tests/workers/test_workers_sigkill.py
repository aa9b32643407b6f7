"""A worker killed (SIGKILL) in the middle of a task loses nothing and duplicates nothing.

How: the workers run with a test-only checkpoint armed (``HSDT_WORKERS_TEST_PAUSE``, see
:func:`hsdt.workers.tasks.checkpoint`). The first task to reach it writes a marker with its
pid and process group and sleeps; the test reads the marker and kills — the whole worker
(``killpg``: main process and pool process at once, as a machine or OOM kill would) or only
the pool process (Celery's ``task_reject_on_worker_lost`` path). The message was never
acknowledged, so the broker hands it out again (RabbitMQ at once; Redis once the visibility
timeout passes) and the checkpoint lets the second delivery through. The whole class must
then be archived with one index row, one log event and one stored object per record, and
the journal must show that nothing was done twice.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from workerkit import STUDENTS, BrokerRun, ClassFixture, archive_summary, read_marker, work_counts

from hsdt.workers.files import read_journal
from hsdt.workers.pipeline import process_class

STEPS = ("render", "sign", "seal", "ingest")


@pytest.mark.parametrize(("transport", "point", "victim"), [
    # mid-signing, nothing published yet: the other worker must do it all again
    ("redis", "sign:mid", "worker"),
    # archived but not acknowledged: the redelivery must find it and store nothing
    ("amqp", "ingest:stored", "worker"),
    # only the pool process dies: the worker rejects the message back to the queue
    ("amqp", "seal:sealed", "pool"),
])
def test_sigkill_in_mid_task(transport: str, point: str, victim: str,
                             broker_run: Callable[[str], BrokerRun], school_class: ClassFixture,
                             tmp_path: Path) -> None:
    run = broker_run(transport)
    marker = tmp_path / "paused.json"
    run.workers.start(2, extra_env={"HSDT_WORKERS_TEST_PAUSE": point,
                                    "HSDT_WORKERS_TEST_PAUSE_FILE": str(marker),
                                    "HSDT_WORKERS_TEST_PAUSE_SECONDS": "60"})
    work, archive = tmp_path / "work", tmp_path / "archive"
    job = process_class(school_class.bundle_path, work, archive, school_class.pki.workdir,
                        app=run.app)
    paused = read_marker(marker, timeout=60)
    killed = run.workers.by_pgid(paused["pgid"])
    if victim == "worker":
        killed.kill()
    else:
        os.kill(paused["pid"], signal.SIGKILL)

    outcome = job.wait(timeout=90)
    assert outcome.complete and len(outcome.archived) == STUDENTS, run.workers.logs()

    # stored exactly once: index, log, store agree, and the audit finds nothing
    summary = archive_summary(archive, school_class.pki, work)
    assert summary["index_rows"] == summary["log_events"] == STUDENTS
    assert summary["record_objects"] == summary["report_objects"] == STUDENTS
    assert summary["audit_findings"] == []
    assert all(r["verdict"] == "valid" and r["revision"] == 1 for r in summary["records"].values())
    assert set(summary["records"]) == {r.record_id for r in school_class.records}
    assert run.broker.backlog().get("queued", 0) == 0
    assert run.broker.backlog().get("unacked", 0) == 0

    # done once: every step's work appears once per record; the paused record's step was
    # finished by a process that was not killed
    counts = work_counts(work)
    step = point.split(":")[0]
    for s in STEPS:
        if s == step and point == "ingest:stored":
            # the killed delivery had committed to the archive: the redelivery only found it
            assert (counts[(s, "work")], counts[(s, "skip")]) == (STUDENTS - 1, 1)
        else:
            assert counts[(s, "work")] == STUDENTS, (s, counts)
    lines = [ln for ln in read_journal(work)
             if ln["task"] == step and ln["record_id"] == paused["record_id"]]
    assert len(lines) == 1 and lines[0]["pid"] != paused["pid"]
    if victim == "worker":
        assert not killed.alive()
        assert os.getpgid(lines[0]["pid"]) != paused["pgid"]  # the other worker
