"""A class from locked bundle to archive: one chain per record, records spread over workers.

:func:`process_class` sends, for each record, ``render → sign → seal → ingest`` as one Celery
chain; the chains are independent, so with N workers N records move at once, and a record
that fails stops only its own chain. :meth:`ClassJob.wait` follows the run through the
per-record status files the tasks write (no result backend: see :mod:`hsdt.workers.app`).

With the embedded default (no broker) the chains run in the calling process as they are
sent, so ``process_class`` returns when the class is done and ``wait`` returns at once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import chain

from hsdt.domain.bundles import decode_json, load_locked
from hsdt.domain.errors import HsdtError
from hsdt.domain.records import records_for
from hsdt.workers.commit import enqueue_after_commit
from hsdt.workers.files import read_statuses, write_status

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.orm import Session

CHAIN = ("hsdt.render_record", "hsdt.sign_record", "hsdt.seal_record", "hsdt.ingest_record")
TERMINAL = ("archived", "failed", "awaiting_signatures")


class ClassJobTimeout(HsdtError):
    code = "workers_timeout"


@dataclass(frozen=True)
class ClassOutcome:
    """Where each record of a run ended."""

    archived: dict[str, str] = field(default_factory=dict)  # record id → archived SHA-256
    failed: dict[str, str] = field(default_factory=dict)  # record id → reason
    awaiting: dict[str, list[str]] = field(default_factory=dict)  # record id → unsigned fields
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.failed and not self.awaiting


@dataclass(frozen=True)
class ClassJob:
    run: str
    work_dir: Path
    archive_root: Path
    record_ids: tuple[str, ...]
    started: float

    def outcome(self) -> tuple[ClassOutcome, list[str]]:
        """The outcome so far and the records of this run not finished yet."""
        statuses = read_statuses(self.work_dir)
        archived: dict[str, str] = {}
        failed: dict[str, str] = {}
        awaiting: dict[str, list[str]] = {}
        unfinished = []
        for rid in self.record_ids:
            st = statuses.get(rid)
            if st is None or st.get("run") != self.run or st.get("state") not in TERMINAL:
                unfinished.append(rid)
            elif st["state"] == "archived":
                archived[rid] = str(st["sha256"])
            elif st["state"] == "failed":
                failed[rid] = f"({st.get('code')}) {st.get('message')}"
            else:
                awaiting[rid] = list(st.get("missing", []))
        return (ClassOutcome(archived, failed, awaiting, time.monotonic() - self.started),
                unfinished)

    def wait(self, timeout: float = 900.0, poll: float = 0.2) -> ClassOutcome:
        """Block until every record is archived, failed or waiting for a client's signature."""
        deadline = time.monotonic() + timeout
        while True:
            outcome, unfinished = self.outcome()
            if not unfinished:
                return outcome
            if time.monotonic() > deadline:
                raise ClassJobTimeout(
                    f"Sau {timeout:.0f} giây còn {len(unfinished)} hồ sơ chưa xong "
                    f"({', '.join(unfinished[:5])}{'…' if len(unfinished) > 5 else ''}): "
                    "worker có đang chạy và nghe đúng hàng đợi (HSDT_WORKER_QUEUE) không?")
            time.sleep(poll)


def record_chain(app: Celery, bundle_path: Path, job: dict[str, Any]) -> Any:
    """The per-record chain; each step receives the previous one's output path first."""
    first, *rest = CHAIN
    return chain(app.signature(first, args=(str(bundle_path), job)),
                 *(app.signature(name, args=(job,)) for name in rest))


def send_record(app: Celery, bundle_path: Path, job: dict[str, Any],
                session: Session | None = None) -> None:
    """Send one record's chain (after ``session`` commits, if given).

    In the embedded mode the chain runs right here, and Celery's eager chains re-raise a
    step's failure to the caller: the failure is already in the record's status (written by
    the failing task), so it is not allowed to stop the other records of the class — the
    same as with workers, where one record's failure never touches another's chain.
    """
    try:
        enqueue_after_commit(record_chain(app, bundle_path, job), session)
    except Exception as exc:
        if not app.conf.task_always_eager:
            raise  # the broker could not take the message: the caller must know
        current = read_statuses(Path(job["work_dir"])).get(job["record_id"], {})
        if current.get("run") != job.get("run") or current.get("state") != "failed":
            write_status(Path(job["work_dir"]), job["record_id"], "failed", run=job.get("run"),
                         code=getattr(exc, "code", type(exc).__name__),
                         message=getattr(exc, "message", str(exc)))


def process_class(bundle_path: Path | str, out_dir: Path | str, archive_root: Path | str,
                  pki_dir: Path | str | None, *, app: Celery | None = None,
                  session: Session | None = None) -> ClassJob:
    """Send one chain per record of a locked class bundle; returns a handle to wait on.

    ``out_dir`` is the work directory (content-addressed intermediate files, statuses,
    journal) and the scope of idempotency: send the same class again with the same
    ``out_dir`` and nothing is done twice. With ``session``, the chains leave only when
    that database transaction commits (:mod:`hsdt.workers.commit`).
    """
    if app is None:
        from hsdt.workers.app import app as default_app

        app = default_app
    bundle = Path(bundle_path).resolve()
    work = Path(out_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    records = records_for(load_locked(decode_json(bundle.read_bytes(), "tệp dữ liệu lớp")))
    run = uuid.uuid4().hex
    job = ClassJob(run, work, Path(archive_root).resolve(),
                   tuple(r.record_id for r in records), time.monotonic())
    for r in records:
        spec = {"run": run, "record_id": r.record_id, "student_code": r.student.code,
                "data_sha256": r.data_sha256, "work_dir": str(work),
                "archive_root": str(job.archive_root),
                "pki_dir": str(Path(pki_dir).resolve()) if pki_dir is not None else None}
        send_record(app, bundle, spec, session)
    return job
