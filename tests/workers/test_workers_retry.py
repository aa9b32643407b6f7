"""Transient faults (TSA/OCSP unreachable) are retried with backoff; a permanent one fails at
once; either way the record's status says so (there is no result backend to ask)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from workerkit import BrokerRun, ClassFixture, archive_summary, work_counts

from hsdt.domain.records import Record
from hsdt.signing import testpki
from hsdt.workers.app import create_app
from hsdt.workers.pipeline import send_record
from hsdt.workers.settings import WorkerSettings


@pytest.fixture(scope="module")
def dark_pki(school_class: ClassFixture, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[testpki.TestPKI]:
    """A second PKI for the same people whose TSA, OCSP and CRL nobody serves (yet)."""
    bundle = school_class.records[0].bundle
    people = [testpki.Person(t.id, t.full_name) for t in bundle.teachers]
    yield testpki.provision(tmp_path_factory.mktemp("dark-pki"), people, bundle.school.code,
                            bundle.school.name, hsm_people={bundle.school.principal_id})


def _job(rec: Record, work: Path, archive: Path, pki: testpki.TestPKI) -> dict[str, Any]:
    return {"run": "retry", "record_id": rec.record_id, "student_code": rec.student.code,
            "data_sha256": rec.data_sha256, "work_dir": str(work), "archive_root": str(archive),
            "pki_dir": str(pki.workdir)}


def _status(work: Path, rec: Record) -> dict[str, Any] | None:
    path = work / "status" / f"{rec.record_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_an_unreachable_ocsp_responder_is_retried_then_reported(
        school_class: ClassFixture, dark_pki: testpki.TestPKI, tmp_path: Path) -> None:
    app = create_app(WorkerSettings(max_retries=2, retry_backoff=1, retry_backoff_max=1))
    rec = school_class.records[0]
    t0 = time.monotonic()
    send_record(app, school_class.bundle_path, _job(rec, tmp_path, tmp_path / "a", dark_pki))
    status = _status(tmp_path, rec)
    assert status is not None and status["state"] == "failed", status
    assert status["code"] == "transient" and status["task"] == "hsdt.sign_record"
    assert "revocation information" in status["message"]
    assert time.monotonic() - t0 < 30
    assert work_counts(tmp_path) == {("render", "work"): 1}  # nothing signed, nothing stored


def test_a_changed_bundle_fails_at_once(school_class: ClassFixture, tmp_path: Path) -> None:
    app = create_app(WorkerSettings())
    rec = school_class.records[0]
    job = _job(rec, tmp_path, tmp_path / "a", school_class.pki)
    job["data_sha256"] = "0" * 64  # not what the locked bundle holds for this student
    send_record(app, school_class.bundle_path, job)
    status = _status(tmp_path, rec)
    assert status is not None and (status["state"], status["code"]) == ("failed", "bundle_changed")


def test_a_worker_retries_until_the_tsa_and_ocsp_answer(
        broker_run: Callable[[str], BrokerRun], school_class: ClassFixture,
        dark_pki: testpki.TestPKI, tmp_path: Path) -> None:
    run = broker_run("amqp")
    (worker,) = run.workers.start(1)
    rec = school_class.records[1]
    work, archive = tmp_path / "work", tmp_path / "archive"
    send_record(run.app, school_class.bundle_path, _job(rec, work, archive, dark_pki))
    deadline = time.monotonic() + 60
    while "transient fault" not in worker.log.read_text("utf-8", "replace"):
        assert time.monotonic() < deadline, run.workers.logs()
        time.sleep(0.1)
    with testpki.serve(dark_pki, mode="subprocess"):  # the CA's services come back
        deadline = time.monotonic() + 60
        while (_status(work, rec) or {}).get("state") != "archived":
            assert time.monotonic() < deadline, run.workers.logs()
            time.sleep(0.2)
    assert "retry 1/" in worker.log.read_text("utf-8", "replace")
    assert work_counts(work) == {(s, "work"): 1 for s in ("render", "sign", "seal", "ingest")}
    summary = archive_summary(archive, dark_pki, work)
    assert summary["index_rows"] == summary["log_events"] == summary["record_objects"] == 1
