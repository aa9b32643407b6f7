"""The tasks: thin, idempotent, acknowledged late, retried on transient faults.

Each task reads its input, calls the packages below (``hsdt.workflow``, ``hsdt.signing``,
``hsdt.archive``) and writes its output where the next delivery — of this message or of the
next step — will find it. No rule lives here: the plan order, the certificate policy, the
data lock, what may enter the archive are all checked below, exactly as for the CLI.

Idempotency, keyed by content hash (at-least-once delivery is the contract, see ``app``):

======================  ====================================  ==================================
task                    done-already test                      output
======================  ====================================  ==================================
``render_record``       ``rendered/<record data SHA-256>.pdf``  that file (rendering is
                        exists                                  deterministic)
``sign_record``         ``signed/<SHA-256 of input>.pdf``      every field whose key the server
                        exists                                  holds, in plan order
``seal_record``         ``sealed/<SHA-256 of input>.pdf``      the B-LTA record
                        exists
``ingest_record``       the archive's index has the input's    index row + log event + object
                        SHA-256 (checked under its lock)       (the archive's own idempotency)
``renew_record``        a version ``renewed_from`` this one    a renewed version
                        exists
``fixity_sweep``        — (bounded, resumes from a cursor)      PREMIS events in the archive
======================  ====================================  ==================================

A signature or a seal is not deterministic (it carries the time), so "delivered twice,
done once" cannot rest on the output's hash: it rests on the *input's* hash naming the
output, published with ``link(2)`` (never replaced) while holding that output's lock. A
second delivery — after a crash, or at the same moment on another worker — finds the
output and passes it on; every later step therefore sees one version, and the archive
stores one record.

Chains: ``render_record | sign_record | seal_record | ingest_record``; each returns the path
of its output (a string: JSON messages), which Celery prepends to the next task's
arguments. ``sign_record`` returns ``None`` when a field's key is not on the server (the
record waits for a deferred signature); the later steps pass ``None`` through.

Every chain task takes a ``job`` dict as its last argument (run id, record id, student code,
record data SHA-256, work dir, archive root, PKI dir): :meth:`HsdtTask.on_failure` uses it to
write the record's ``failed`` status, so a waiting caller learns of a failure without a
result backend.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval

from hsdt.archive.audit import fixity_audit
from hsdt.domain.bundles import decode_json, load_locked
from hsdt.domain.canonical import sha256_hex
from hsdt.domain.errors import ArchiveError, HsdtError
from hsdt.domain.records import Record, records_for
from hsdt.signing.pades import renewal_due
from hsdt.signing.record_state import read_record
from hsdt.workers import context
from hsdt.workers.errors import TransientError, translating
from hsdt.workers.files import journal, produce_once, write_status
from hsdt.workers.settings import settings_of
from hsdt.workflow import render

log = logging.getLogger(__name__)

Job = dict[str, Any]
_EAGER_MAX_SLEEP = 30.0


def checkpoint(point: str, record_id: str = "") -> None:
    """**Tests only.** Pause once at ``point`` so a test can SIGKILL this worker mid-task.

    Active only when ``HSDT_WORKERS_TEST_PAUSE`` names this point and
    ``HSDT_WORKERS_TEST_PAUSE_FILE`` a marker path. The first process to get here creates
    the marker (exclusively) with its pid and process group, then sleeps
    (``HSDT_WORKERS_TEST_PAUSE_SECONDS``, default 120) waiting to be killed; a later arrival
    — the redelivered message — finds the marker and carries on. Points: ``sign:mid`` (half
    the fields signed, in memory), ``seal:sealed`` (sealed, not yet published),
    ``ingest:stored`` (archived, message not yet acknowledged).
    """
    if os.environ.get("HSDT_WORKERS_TEST_PAUSE") != point:
        return
    marker = os.environ.get("HSDT_WORKERS_TEST_PAUSE_FILE")
    if not marker:
        return
    body = json.dumps({"pid": os.getpid(), "pgid": os.getpgid(0), "point": point,
                       "record_id": record_id}).encode()
    tmp = Path(f"{marker}.{os.getpid()}.tmp")
    tmp.write_bytes(body)
    try:
        os.link(tmp, marker)
    except FileExistsError:
        return
    finally:
        tmp.unlink()
    log.warning("test pause at %s: pid %d waits to be killed", point, os.getpid())
    time.sleep(float(os.environ.get("HSDT_WORKERS_TEST_PAUSE_SECONDS", "120")))


class HsdtTask(Task):  # type: ignore[misc]
    """Base of every task: late acks, library faults translated, transient ones retried.

    Retrying is Celery's ``autoretry_for`` behaviour (same exponential backoff with full
    jitter, ``get_exponential_backoff_interval``) done here rather than through the
    decorator, so that the backoff and the retry limit come from the app's
    :class:`~hsdt.workers.settings.WorkerSettings` (tests build apps with their own) and so
    that the translation of library exceptions wraps every task in one place.
    """

    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = ()
    ignore_result = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            with translating():
                return self.run(*args, **kwargs)
        except TransientError as exc:
            # Sessions that failed once (TSA, OCSP, HSM, store) are not trusted again.
            context.reset(reinitialize_pkcs11=exc.cause_code == "token_error")
            s = settings_of(self.app)
            countdown = get_exponential_backoff_interval(
                factor=s.retry_backoff, retries=self.request.retries,
                maximum=s.retry_backoff_max, full_jitter=True)
            if self.request.retries >= s.max_retries:
                log.error("%s: transient fault (%s), no retries left", self.name, exc.message)
                raise
            log.warning("%s: transient fault (%s), retry %d/%d in %ds", self.name, exc.message,
                        self.request.retries + 1, s.max_retries, countdown)
            if self.request.is_eager:
                # In-process mode retries at once; keep the backoff so a TSA that is down
                # for a minute does not use up every retry in a second.
                time.sleep(min(countdown, _EAGER_MAX_SLEEP))
            raise self.retry(exc=exc, countdown=countdown, max_retries=s.max_retries) from exc

    def on_failure(self, exc: BaseException, task_id: str, args: tuple[Any, ...],
                   kwargs: dict[str, Any], einfo: Any) -> None:
        """The final failure (retries exhausted or a permanent refusal): say so per record."""
        job = kwargs.get("job") or next((a for a in reversed(args) if isinstance(a, dict)), None)
        message = exc.message if isinstance(exc, HsdtError) else f"{type(exc).__name__}: {exc}"
        log.error("%s failed for %s: %s", self.name, (job or {}).get("record_id", "?"), message)
        if job and job.get("work_dir") and job.get("record_id"):
            write_status(Path(job["work_dir"]), job["record_id"], "failed", run=job.get("run"),
                         task=self.name, code=getattr(exc, "code", type(exc).__name__),
                         message=message)


def _task(name: str) -> Callable[[Callable[..., Any]], Any]:
    return shared_task(name=name, base=HsdtTask, bind=True)  # type: ignore[no-any-return]


# -- render --------------------------------------------------------------------------------

def _load_records(bundle_path: str) -> list[Record]:
    """A *locked* bundle only: its lock is re-proven here, in the worker, before rendering."""
    return records_for(load_locked(decode_json(Path(bundle_path).read_bytes(), "tệp dữ liệu lớp")))


def _render_one(record: Record, work: Path, run: str | None) -> Path:
    out = work / "rendered" / f"{record.data_sha256}.pdf"
    did = produce_once(out, work / "locks", lambda: render(record))
    journal(work, "render", "work" if did else "skip", input=record.data_sha256,
            output=out.name, record_id=record.record_id, run=run)
    return out


@_task("hsdt.render_record")
def render_record(self: HsdtTask, bundle_path: str, job: Job) -> str:
    """Render one record of a locked class bundle (PDF/A-3b with its signature fields)."""
    work = Path(job["work_dir"])
    out = work / "rendered" / f"{job['data_sha256']}.pdf"
    if out.exists():  # done before: not even the bundle needs reading
        journal(work, "render", "skip", input=job["data_sha256"], output=out.name,
                record_id=job["record_id"], run=job.get("run"))
        return str(out)
    found = [r for r in _load_records(bundle_path) if r.student.code == job["student_code"]]
    if not found or found[0].data_sha256 != job["data_sha256"]:
        raise HsdtError(f"Tệp dữ liệu {bundle_path} không còn chứa đúng dữ liệu đã khoá của học sinh "
                        f"{job['student_code']}: dữ liệu đã khoá không được thay đổi.",
                        code="bundle_changed")
    return str(_render_one(found[0], work, job.get("run")))


@_task("hsdt.render_class")
def render_class(self: HsdtTask, bundle_path: str, work_dir: str) -> list[str]:
    """Render every record of a locked class bundle (records already rendered are skipped)."""
    work = Path(work_dir)
    return [str(_render_one(r, work, None)) for r in _load_records(bundle_path)]


# -- sign and seal ---------------------------------------------------------------------------

def _sign_server_fields(ctx: context.SigningContext, pdf: bytes, data_sha256: str,
                        record_id: str = "") -> bytes:
    """Every unsigned field whose key this server holds, stage by stage.

    A field without a server-side key blocks the later stages only (the plan lets a stage's
    fields be signed in any order); the signing package refuses anything out of order anyway.
    """
    state = read_record(pdf)
    pending = [f for f in sorted(state.plan.fields, key=lambda f: f.stage)
               if f.name not in state.filled_fields]
    blocked_from: int | None = None
    for i, f in enumerate(pending):
        if blocked_from is not None and f.stage > blocked_from:
            break
        key = ctx.key_for(f)
        if key is None:
            if blocked_from is None:
                blocked_from = f.stage
            continue
        pdf = ctx.signer.sign(pdf, f.name, key, expected_data_sha256=data_sha256)
        if i == len(pending) // 2:
            checkpoint("sign:mid", record_id)
    return pdf


def _step(task: str, subdir: str, pdf_path: str, job: Job,
          produce: Callable[[bytes], bytes]) -> Path:
    """Run one content-addressed step: output named by the SHA-256 of the input file."""
    work = Path(job["work_dir"])
    data = Path(pdf_path).read_bytes()
    digest = sha256_hex(data)
    out = work / subdir / f"{digest}.pdf"
    did = produce_once(out, work / "locks", lambda: produce(data))
    journal(work, task, "work" if did else "skip", input=digest, output=out.name,
            record_id=job["record_id"], run=job.get("run"))
    return out


@_task("hsdt.sign_record")
def sign_record(self: HsdtTask, pdf_path: str | None, job: Job) -> str | None:
    """Sign the fields whose keys the server holds; ``None`` if the record now waits for others."""
    if pdf_path is None:
        return None

    def produce(data: bytes) -> bytes:
        ctx = context.signing_context(job["pki_dir"])
        return _sign_server_fields(ctx, data, job["data_sha256"], job["record_id"])

    out = _step("sign", "signed", pdf_path, job, produce)
    state = read_record(out.read_bytes())
    missing = [f.name for f in state.plan.fields if f.name not in state.filled_fields]
    if missing:
        write_status(Path(job["work_dir"]), job["record_id"], "awaiting_signatures",
                     run=job.get("run"), missing=missing, file=str(out))
        return None
    return str(out)


@_task("hsdt.seal_record")
def seal_record(self: HsdtTask, pdf_path: str | None, job: Job) -> str | None:
    """Seal the fully signed record (PAdES B-LTA: DSS, then a document timestamp)."""
    if pdf_path is None:
        return None

    def produce(data: bytes) -> bytes:
        sealed = context.signing_context(job["pki_dir"]).signer.seal(
            data, expected_data_sha256=job["data_sha256"])
        checkpoint("seal:sealed", job["record_id"])
        return sealed

    return str(_step("seal", "sealed", pdf_path, job, produce))


# -- archive ---------------------------------------------------------------------------------

@_task("hsdt.ingest_record")
def ingest_record(self: HsdtTask, pdf_path: str | None, job: Job) -> dict[str, Any] | None:
    """Store the sealed record in the archive once (verified, write-once, logged, indexed)."""
    if pdf_path is None:
        return None
    work, root, pki_dir = Path(job["work_dir"]), job["archive_root"], job.get("pki_dir")
    data = Path(pdf_path).read_bytes()
    digest = sha256_hex(data)
    with context.archive_lock(root):
        archive = context.archive_for(root, pki_dir)
        archive.recover()  # a worker killed between log and index left an event to index
        entry = archive.index.by_sha(digest)
    did = "skip"
    if entry is None:
        report = archive.verifier.verify(data)  # the slow part, outside the lock
        with context.archive_lock(root):
            archive.recover()
            entry = archive.index.by_sha(digest)
            if entry is None:  # else another delivery won meanwhile
                entry, _report = archive.ingest(data, verified=report)
                did = "work"
    checkpoint("ingest:stored", job["record_id"])
    journal(work, "ingest", did, input=digest, record_id=job["record_id"], run=job.get("run"),
            log_index=entry.log_index)
    write_status(work, job["record_id"], "archived", run=job.get("run"), sha256=entry.sha256,
                 log_index=entry.log_index, key=entry.key)
    return {"record_id": entry.record_id, "sha256": entry.sha256, "log_index": entry.log_index}


@_task("hsdt.fixity_sweep")
def fixity_sweep(self: HsdtTask, archive_root: str, pki_dir: str | None = None,
                 limit: int | None = None, sample: int | None = None) -> dict[str, Any]:
    """Re-read and re-hash stored records (beat: hourly, ``limit`` per run, resumes)."""
    with context.archive_lock(archive_root):
        archive = context.archive_for(archive_root, pki_dir)
        run = fixity_audit(archive, limit=limit, sample=sample)
    for f in run.failures:
        log.error("fixity: (%s) %s", f.code, f.message)
    return {"checked": run.checked, "failures": len(run.failures),
            "completed_sweep": run.completed_sweep}


@_task("hsdt.renew_due")
def renew_due(self: HsdtTask, archive_root: str, pki_dir: str | None = None,
              margin_days: int = 730, limit: int | None = None) -> dict[str, Any]:
    """Find records whose newest archive timestamp needs renewing; one task per record."""
    with context.archive_lock(archive_root):
        archive = context.archive_for(archive_root, pki_dir)
        entries = archive.index.all()
    latest: dict[str, Any] = {}
    for e in sorted(entries, key=lambda e: e.log_index):
        latest[e.record_id] = e  # log order: the last one is the newest version
    now = datetime.now(UTC)
    due = [e for e in latest.values()
           if renewal_due(archive.get(e), now, timedelta(days=margin_days)) is not None]
    for e in due[:limit]:
        self.app.signature("hsdt.renew_record", args=(archive_root, pki_dir, e.sha256)).apply_async()
    return {"due": len(due), "sent": len(due[:limit])}


@_task("hsdt.renew_record")
def renew_record(self: HsdtTask, archive_root: str, pki_dir: str | None, sha256: str
                 ) -> dict[str, Any]:
    """Add a new archive timestamp to one stored version, unless that was done already."""
    if pki_dir is None:
        raise HsdtError("Gia hạn cần cấu hình TSA lưu trữ (HSDT_PKI_DIR ở bản nhúng).",
                        code="tsa_missing")
    renewer = context.signing_context(pki_dir).renewer
    with context.archive_lock(archive_root):
        archive = context.archive_for(archive_root, pki_dir)
        archive.recover()
        entry = archive.index.by_sha(sha256)
        if entry is None:
            raise ArchiveError(f"Kho không có phiên bản {sha256[:16]}… để gia hạn.", code="not_found")
        done = [e for e in archive.index.search(record_id=entry.record_id) if e.renewed_from == sha256]
        if done:
            return {"record_id": entry.record_id, "sha256": done[0].sha256, "did": "skip"}
        new = archive.renew(entry, renewer.renew)
    return {"record_id": new.record_id, "sha256": new.sha256, "did": "work"}
