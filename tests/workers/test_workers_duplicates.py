"""A message delivered twice does its work once — even when both copies run at the same
moment on two workers (the output's lock makes the second wait, then find the output)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from workerkit import BrokerRun, ClassFixture, archive_summary, work_counts

from hsdt.workers.files import read_journal
from hsdt.workers.pipeline import record_chain

STEPS = ("render", "sign", "seal", "ingest")


def test_each_step_delivered_twice_works_once(broker_run: Callable[[str], BrokerRun],
                                               school_class: ClassFixture, tmp_path: Path) -> None:
    run = broker_run("redis")
    run.workers.start(2)
    rec = school_class.records[0]
    work, archive = tmp_path / "work", tmp_path / "archive"
    job = {"run": "dup", "record_id": rec.record_id, "student_code": rec.student.code,
           "data_sha256": rec.data_sha256, "work_dir": str(work), "archive_root": str(archive),
           "pki_dir": str(school_class.pki.workdir)}
    # the same chain, twice: every message of it arrives twice, the copies side by side
    for _ in range(2):
        record_chain(run.app, school_class.bundle_path, job).apply_async()
    deadline = time.monotonic() + 90
    while sum(1 for ln in read_journal(work) if ln["task"] == "ingest") < 2:
        assert time.monotonic() < deadline, run.workers.logs()
        time.sleep(0.2)

    counts = work_counts(work)
    for step in STEPS:
        assert (counts[(step, "work")], counts[(step, "skip")]) == (1, 1), (step, counts)
    # both copies of each step ran, on both workers
    assert len({ln["pid"] for ln in read_journal(work)}) == 2
    for sub in ("rendered", "signed", "sealed"):
        assert len(list((work / sub).glob("*.pdf"))) == 1, sub
    summary = archive_summary(archive, school_class.pki, work)
    assert summary["index_rows"] == summary["log_events"] == summary["record_objects"] == 1
    assert summary["audit_findings"] == []
