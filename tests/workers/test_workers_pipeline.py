"""A class goes from locked bundle to archive on two worker processes — on Redis, on RabbitMQ,
and with the embedded default (no broker) — and the three archives record the same thing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from workerkit import STUDENTS, TRANSPORTS, ClassFixture, archive_summary, work_counts

from hsdt.workers.pipeline import process_class


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_record_is_archived_once_and_verifies(runs: dict[str, dict[str, Any]],
                                                    school_class: ClassFixture,
                                                    transport: str) -> None:
    run = runs[transport]
    outcome, summary = run["outcome"], run["summary"]
    assert outcome.complete, (outcome, run["logs"])
    expected = {r.record_id for r in school_class.records}
    assert set(outcome.archived) == expected
    assert set(summary["records"]) == expected
    assert summary["index_rows"] == summary["log_events"] == summary["record_objects"] == STUDENTS
    assert summary["report_objects"] == STUDENTS
    assert summary["audit_findings"] == []
    for rid, rec in summary["records"].items():
        assert rec["verdict"] == "valid" and rec["sealed"] and rec["plan_complete"], rid
        assert rec["revision"] == 1 and rec["archive_timestamps"] == 1, rid
        assert all(valid and trusted for *_, valid, trusted in rec["signatures"]), rid
    # every step did its work exactly once per record: no message was processed twice
    assert work_counts(run["work"]) == {(t, "work"): STUDENTS
                                        for t in ("render", "sign", "seal", "ingest")}


@pytest.mark.parametrize("transport", ["redis", "amqp"])
def test_records_are_spread_over_both_workers(runs: dict[str, dict[str, Any]],
                                              transport: str) -> None:
    signers = {line["pid"] for line in runs[transport]["journal"] if line["task"] == "sign"}
    assert len(signers) == 2, runs[transport]["logs"]


def test_the_three_archives_record_the_same(runs: dict[str, dict[str, Any]]) -> None:
    """Compared: record ids, per-record index facts (kind, student, school, year, revision,
    superseded/renewed links), the verdict, and for each signature its field, assignee,
    certificate and validity; counts of index rows, log events and stored objects; the
    audit; and the SHA-256 of every rendered PDF (deterministic). Not compared: the sealed
    records' SHA-256 and anything with a time in it — each signature carries its own
    timestamp, so those bytes differ by design."""
    summaries = {t: runs[t]["summary"] for t in TRANSPORTS}
    first = json.dumps(summaries["embedded"], sort_keys=True, default=str)
    for transport in ("redis", "amqp"):
        assert json.dumps(summaries[transport], sort_keys=True, default=str) == first, transport
    sealed = {t: set(runs[t]["outcome"].archived.values()) for t in TRANSPORTS}
    assert not (sealed["redis"] & sealed["amqp"]), "a sealed record cannot repeat across runs"


def test_sending_the_class_again_does_nothing(runs: dict[str, dict[str, Any]],
                                             school_class: ClassFixture) -> None:
    """The whole class sent a second time into the same work dir and archive (embedded):
    every step finds its output and skips; the archive does not grow."""
    work = runs["embedded"]["work"]
    archive = work.parent / "archive"
    before = dict(work_counts(work))
    job = process_class(school_class.bundle_path, work, archive, school_class.pki.workdir,
                        app=_embedded_app())
    outcome = job.wait(timeout=30)
    assert outcome.archived == runs["embedded"]["outcome"].archived
    after = work_counts(work)
    for task in ("render", "sign", "seal", "ingest"):
        assert after[(task, "work")] == before[(task, "work")] == STUDENTS
        assert after[(task, "skip")] == STUDENTS
    summary = archive_summary(archive, school_class.pki, work)
    assert summary["index_rows"] == summary["log_events"] == summary["record_objects"] == STUDENTS


def _embedded_app() -> Any:
    from hsdt.workers.app import create_app
    from hsdt.workers.settings import WorkerSettings

    return create_app(WorkerSettings())


def test_status_files_say_where_each_record_is(runs: dict[str, dict[str, Any]]) -> None:
    statuses = list((Path(runs["redis"]["work"]) / "status").glob("*.json"))
    assert len(statuses) == STUDENTS
    for p in statuses:
        st = json.loads(p.read_text())
        assert st["state"] == "archived" and len(st["sha256"]) == 64
