"""The archive service: verify, store write-once, log, index — in an order that survives a crash.

1. the record must verify against its plan (nothing unverified enters the archive);
2. its verification report, then the PDF, go to the object store under content addresses
   (write-once; the same bytes again are a no-op, so a redelivered task or a re-run stores
   nothing twice);
3. the event is appended to the transparency log (durable before we go on);
4. the index row and a PREMIS-style event commit in one SQLite transaction.

A crash after 2 leaves an object the next ingest of the same record adopts; a crash after
3 leaves a log event that :meth:`Archive.recover` turns into its index row. Neither leaves
a duplicate or loses a record.

Adopting means looking for an earlier version before each write: on S3 a listing, one
request in three. The index therefore journals each record, durably, before the first write
of its objects (the ``uploads`` table), and forgets it when the record is indexed. An index
that has journaled since its store held nothing knows every record whose objects may be in
the store: a record neither indexed nor journaled has none, and its objects are written
without the look (``unwritten``); a record an earlier attempt journaled is looked for as
before.

The index is a finding aid; the store and the log are the evidence, and `hsdt audit log`
checks the three against each other.

:meth:`Archive.ingest_many` takes a batch (a class's records) through the same steps: each
record is verified in turn while the records verified before it upload on a few threads
(verification is CPU, uploads are round trips to the store, so they overlap) — verified by
a pool of processes, one per core, when the archive was opened with ``verify_processes``
(:mod:`hsdt.archive.verify_pool`) — then every
record that stored cleanly is logged by one append (one set of fsyncs) and indexed in one
transaction. A record refused or failing to store is reported on its own and is not logged;
the others go in. :meth:`Archive.ingest` is a batch of one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hsdt.archive.index import ArchiveEntry, ArchiveIndex
from hsdt.archive.public import PublicAnswer, public_answer
from hsdt.archive.store import ObjectStore, StoredObject
from hsdt.archive.tlog import (
    LogRangeError,
    TransparencyLog,
    public_key_fingerprint,
    public_key_pem,
)
from hsdt.archive.verify_pool import VerifyPool
from hsdt.domain.canonical import canonical_json, sha256_hex
from hsdt.domain.errors import ArchiveError, HsdtError
from hsdt.signing.record_state import read_record
from hsdt.signing.verification import ArchiveEvidence, FixityCheck, VerificationReport, Verifier

PERMANENT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
LOG_EVENT_SCHEMA = "hsdt.archive-event/1"
# Records of a batch uploading at once. Each upload is a few sequential round trips (put, read
# the lock back — and first look for an earlier version, unless the upload journal rules one
# out; report, then record), so a handful of threads keeps the store busy while the next record
# is verified; boto3 clients are thread-safe.
INGEST_UPLOADS = 8


# What an archive directory holds from its first ingest on (the store may be elsewhere).
_ARCHIVE_PARTS = ("index.sqlite3", "log", "log.key")
_JOURNAL_STATE = "upload_journal"  # "complete" or "partial": see Archive._upload_journal_complete


def archive_exists(root: Path) -> bool:
    """Whether ``root`` holds an archive: its index, its transparency log or its log key."""
    return any((root / part).exists() for part in _ARCHIVE_PARTS)


def require_archive(root: Path) -> None:
    """Refuse a directory that holds no archive, for the commands that only read one.

    Opening creates what is missing, which is right for an ingest and wrong for a reader:
    an audit of a mistyped path would start an empty archive there and report it clean.
    """
    if archive_exists(root):
        return
    near = sorted(p for p in root.iterdir() if p.is_dir() and archive_exists(p)) \
        if root.is_dir() else []
    hint = f" Có phải là «{near[0]}»?" if near else ""
    raise ArchiveError(f"Không có kho lưu trữ nào ở «{root}» (không thấy chỉ mục, nhật ký minh "
                       f"bạch hay khoá nhật ký).{hint} Hãy kiểm tra lại --root; kho chỉ được "
                       "tạo khi lưu hồ sơ đầu tiên (hsdt archive ingest).", code="no_archive")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_key(kind: str, digest: str) -> str:
    return f"records/{kind}/{digest[:2]}/{digest}.pdf"


def record_digest(key: str) -> str:
    """The SHA-256 a record's key names (the inverse of :func:`record_key`)."""
    return key.rsplit("/", 1)[-1].removesuffix(".pdf")


def _report_key(digest: str, report_bytes: bytes) -> str:
    return f"reports/{digest[:2]}/{digest}/{sha256_hex(report_bytes)}.json"


def load_or_create_log_key(path: Path) -> Ed25519PrivateKey:
    """The service's log key (embedded default: a file beside the archive, created once).

    Production keeps it on the HSM or in a secret store; auditors only ever need the public
    half, exported with the tree heads.
    """
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ArchiveError(f"Khoá nhật ký {path} không phải Ed25519.", code="bad_log_key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    path.chmod(0o600)
    return key


@dataclass(frozen=True)
class IngestOutcome:
    """What became of one record of a batch: its index entry and report, or why it is not in.

    ``error`` set means the record is not archived: at most its objects are in the store,
    and the next ingest of the same bytes adopts them. The one exception is an index that
    fails *after* the log append and keeps failing: then the event is logged and
    :meth:`Archive.recover` indexes it on the next open. Retrying is safe either way.
    ``report`` is there whenever the record was verified.
    """

    sha256: str
    entry: ArchiveEntry | None = None
    report: VerificationReport | None = None
    error: HsdtError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Staged:
    """A verified record on its way in: checked against the index, not yet logged."""

    position: int
    pdf: bytes
    digest: str
    report: VerificationReport
    report_bytes: bytes
    old: ArchiveEntry | None
    upload: Future[StoredObject] | None = None
    unwritten: bool = False  # no object of this record can be in the store yet (the journal)


def _pooled_report(pending: Future[VerificationReport]) -> VerificationReport:
    try:
        return pending.result()
    except BrokenProcessPool as exc:  # the pool is replaced at the next submit
        raise ArchiveError("Tiến trình xác minh dừng đột ngột trước khi xác minh xong hồ sơ này; "
                           "hãy chạy lại (hồ sơ đã lưu không bị lưu lần nữa).",
                           code="verification_interrupted") from exc


def _run_now(fn: Callable[[_Staged], StoredObject], item: _Staged) -> Future[StoredObject]:
    """A finished future: a batch of one uploads in the calling thread, no pool needed."""
    done: Future[StoredObject] = Future()
    try:
        done.set_result(fn(item))
    except Exception as exc:  # handed to whoever asks for the result, as a pool would
        done.set_exception(exc)
    return done


class Archive:
    """Write-once archive of verified records, with an index and a transparency log."""

    def __init__(self, store: ObjectStore, root: Path, verifier: Verifier,
                 retain_until: datetime = PERMANENT, log_key: Ed25519PrivateKey | None = None,
                 *, verify_processes: int = 1) -> None:
        """``verify_processes`` > 1: batches are verified by that many processes
        (:mod:`hsdt.archive.verify_pool`), started now; a single record is verified here.
        Whatever of the archive is missing under ``root`` is created: readers call
        :func:`require_archive` first."""
        self._pool = VerifyPool(verifier, verify_processes) if verify_processes > 1 else None
        self.store = store
        self.root = root
        self.verifier = verifier
        self.retain_until = retain_until
        self.index = ArchiveIndex(root / "index.sqlite3")
        self.log = TransparencyLog.open(root / "log", signing_key=log_key
                                        or load_or_create_log_key(root / "log.key"))
        self.recover()
        self._journal_complete = self._upload_journal_complete()

    def _upload_journal_complete(self) -> bool:
        """Whether this index has journaled every record written to the store: decided once,
        when the index first meets its store, as whether the store then held nothing.

        An archive whose store already held objects (made before the journal existed, or an
        index rebuilt over a full bucket) keeps looking before every write.
        """
        state = self.index.get_state(_JOURNAL_STATE)
        if state is None:
            state = "complete" if self.log.size == 0 and self.store.holds_nothing() else "partial"
            self.index.set_state(_JOURNAL_STATE, state)
        return state == "complete"

    def verification_pids(self) -> list[int]:
        """The ids of the processes verifying batches (none without a pool): to watch them."""
        return self._pool.pids() if self._pool is not None else []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.index.close()

    # -- ingest ----------------------------------------------------------------------------
    def ingest(self, pdf: bytes, *, supersedes: str | None = None,
               verified: VerificationReport | None = None) -> tuple[ArchiveEntry, VerificationReport]:
        """Verify, store, log and index one record; raises why it was refused or not stored.

        ``verified``: this very record's report, made by the caller with the same trust
        anchors and registry as this archive's verifier *before* taking the archive's write
        lock — verifying is most of an ingest and needs no lock, so several workers verify
        at once and only store, log and index one after the other.
        """
        reports = {sha256_hex(pdf): verified} if verified is not None else None
        outcome = self._ingest([(pdf, supersedes)], uploads=1, reports=reports)[0]
        if outcome.error is not None:
            raise outcome.error
        if outcome.entry is None or outcome.report is None:  # pragma: no cover - by construction
            raise ArchiveError("Lưu trữ không trả kết quả cho hồ sơ.", code="ingest_failed")
        return outcome.entry, outcome.report

    def ingest_many(self, pdfs: Sequence[bytes], *, uploads: int = INGEST_UPLOADS,
                    progress: Callable[[int], None] | None = None) -> list[IngestOutcome]:
        """Ingest a batch; one outcome per record, in order, each success durable on return.

        Every record is verified and stored exactly as :meth:`ingest` does; the batch shares
        one log append and one index transaction. A record that fails (not valid, not
        stored) is reported in its outcome and leaves no log event or index row; the same
        bytes twice in a batch are stored once and get the same outcome. ``progress`` is
        told how many records have been verified so far (verification is the long part).
        """
        return self._ingest([(pdf, None) for pdf in pdfs], uploads=uploads, progress=progress)

    def _ingest(self, items: Sequence[tuple[bytes, str | None]], *, uploads: int,
                reports: Mapping[str, VerificationReport] | None = None,
                progress: Callable[[int], None] | None = None) -> list[IngestOutcome]:
        outcomes: list[IngestOutcome | None] = [None] * len(items)
        digests = [sha256_hex(pdf) for pdf, _ in items]
        given = reports or {}
        journaled = [d for d in dict.fromkeys(digests) if self.index.by_sha(d) is None]
        # Durable before any of their objects is written: see the module's docstring.
        begun_before = self.index.begin_uploads(journaled, _now()) if journaled else set()
        verifying = self._verify_ahead(items, digests, given)
        first: dict[str, int] = {}
        staged: list[_Staged] = []
        workers = max(1, min(uploads, len(items)))
        with contextlib.ExitStack() as stack:
            pool = (stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="hsdt-ingest"))
                    if workers > 1 else None)
            for i, ((pdf, supersedes), digest) in enumerate(zip(items, digests, strict=True)):
                if progress is not None and i:
                    progress(i)  # the records before this one are verified (or refused)
                if digest in first:
                    continue  # the same bytes again in this batch: the first one's outcome
                first[digest] = i
                try:
                    verified = given.get(digest)
                    if verified is None and digest in verifying:
                        verified = _pooled_report(verifying[digest])
                    item = self._stage(i, pdf, digest, supersedes, verified)
                except HsdtError as exc:
                    outcomes[i] = IngestOutcome(digest, error=exc)
                    continue
                if isinstance(item, IngestOutcome):
                    outcomes[i] = item
                    continue
                # Only now, verified: its objects upload while the next record is verified.
                item.unwritten = self._journal_complete and digest not in begun_before
                item.upload = pool.submit(self._upload, item) if pool else _run_now(self._upload, item)
                staged.append(item)
            if progress is not None and items:
                progress(len(items))
            stored: list[tuple[_Staged, StoredObject]] = []
            for item in staged:
                assert item.upload is not None
                try:
                    stored.append((item, item.upload.result()))
                except HsdtError as exc:
                    outcomes[item.position] = IngestOutcome(item.digest, report=item.report, error=exc)
        for position, outcome in self._log_and_index(stored).items():
            outcomes[position] = outcome
        # Journaled for nothing (refused, or already indexed by the time it was staged): no
        # object of theirs was written. A failed write keeps its record journaled.
        written = {item.digest for item in staged}
        idle = [d for d in journaled if d not in written and d not in begun_before]
        if idle:
            self.index.end_uploads(idle)
        answered: list[IngestOutcome] = []
        for outcome, digest in zip(outcomes, digests, strict=True):
            outcome = outcome or outcomes[first[digest]]  # a repeat: its first occurrence's
            if outcome is None:  # pragma: no cover - every first occurrence is answered above
                raise ArchiveError("Lưu trữ không trả kết quả cho hồ sơ.", code="ingest_failed")
            answered.append(outcome)
        return answered

    def _verify_ahead(self, items: Sequence[tuple[bytes, str | None]], digests: list[str],
                      reports: Mapping[str, VerificationReport]
                      ) -> dict[str, Future[VerificationReport]]:
        """Hand every record of the batch that still needs verifying to the pool at once;
        the results are taken in record order as the batch is staged."""
        if self._pool is None or len(items) < 2:
            return {}
        ahead: dict[str, Future[VerificationReport]] = {}
        for (pdf, _), digest in zip(items, digests, strict=True):
            if digest not in reports and digest not in ahead:
                ahead[digest] = self._pool.submit(pdf)
        return ahead

    def _stage(self, position: int, pdf: bytes, digest: str, supersedes: str | None,
               verified: VerificationReport | None = None) -> _Staged | IngestOutcome:
        """Verify one record and check it against the index; nothing is written here."""
        report = verified if verified is not None else self.verifier.verify(pdf)
        if not report.valid:
            reasons = "\n  - ".join(report.problems)
            raise ArchiveError(f"Hồ sơ {report.record_id} không được lưu trữ vì chưa hợp lệ:\n"
                               f"  - {reasons}", code="ingest_refused")
        existing = self.index.by_sha(digest)
        if existing is not None:
            return IngestOutcome(digest, existing, report)  # delivered twice: stored once
        old = self.index.by_sha(supersedes) if supersedes else None
        if supersedes and old is None:
            raise ArchiveError(f"Không có hồ sơ {supersedes} để thay thế.", code="not_found")
        if old is not None and old.record_id != report.record_id:
            raise ArchiveError("Hồ sơ thay thế phải cùng mã hồ sơ với hồ sơ cũ "
                               f"({old.record_id} ≠ {report.record_id}).", code="supersede_mismatch")
        report_bytes = json.dumps(report.to_json(), ensure_ascii=False, sort_keys=True).encode()
        return _Staged(position, pdf, digest, report, report_bytes, old)

    def _upload(self, item: _Staged) -> StoredObject:
        """Store the record's report, then the record, both locked; runs on a pool thread.

        The report goes first so that an upload failing halfway leaves at most a report: the
        records/ prefix, which the audit compares with the log, only ever holds a record whose
        report is stored, and a retry adopts that record object (same bytes, same key).
        """
        report = item.report
        self.store.put_locked(_report_key(item.digest, item.report_bytes), item.report_bytes,
                              retain_until=self.retain_until,
                              metadata={"record-id": report.record_id}, unwritten=item.unwritten)
        return self.store.put_locked(record_key(report.kind, item.digest), item.pdf,
                                     retain_until=self.retain_until,
                                     metadata={"record-id": report.record_id, "kind": report.kind},
                                     unwritten=item.unwritten)

    def _log_and_index(self, stored: list[tuple[_Staged, StoredObject]]) -> dict[int, IngestOutcome]:
        """Log every stored record with one append, index them in one transaction.

        Revisions count the record's earlier ingests, in the index and earlier in the batch.
        If the log or the index fails, whatever reached the log is indexed (recover) and each
        record is answered by what the index then holds: success exactly for those logged.
        """
        if not stored:
            return {}
        events: list[dict[str, Any]] = []
        revisions: dict[str, int] = {}
        for item, obj in stored:
            r = item.report
            if r.record_id not in revisions:
                revisions[r.record_id] = sum(1 for e in self.index.search(record_id=r.record_id)
                                             if e.renewed_from is None)
            revisions[r.record_id] += 1
            entry = ArchiveEntry(
                sha256=item.digest, record_id=r.record_id, kind=r.kind,
                student_code=r.student_code, school_code=r.school_code,
                school_year=r.school_year, revision=revisions[r.record_id], key=obj.key,
                version_id=obj.version_id, size=obj.size, retain_until=obj.retain_until,
                stored_at=obj.stored_at, report_key=_report_key(item.digest, item.report_bytes),
                log_index=-1)
            events.append({"type": "supersede" if item.old else "ingest", "entry": asdict(entry),
                           "supersedes": item.old.sha256 if item.old else None})
        try:
            entries = self._commit(events)
        except (ArchiveError, OSError, sqlite3.Error) as exc:
            failure = exc if isinstance(exc, ArchiveError) else ArchiveError(
                f"Không ghi được nhật ký hoặc chỉ mục lưu trữ: {exc}", code="commit_failed")
            if failure is not exc:
                failure.__cause__ = exc
            with contextlib.suppress(ArchiveError, OSError, sqlite3.Error):
                self.recover()
            out: dict[int, IngestOutcome] = {}
            for item, _obj in stored:
                try:
                    found = self.index.by_sha(item.digest)
                except sqlite3.Error:
                    found = None
                out[item.position] = (IngestOutcome(item.digest, found, item.report) if found else
                                      IngestOutcome(item.digest, report=item.report, error=failure))
            return out
        return {item.position: IngestOutcome(item.digest, entry, item.report)
                for (item, _obj), entry in zip(stored, entries, strict=True)}

    # -- renewal ---------------------------------------------------------------------------
    def renew(self, entry: ArchiveEntry, renew_pdf: Callable[[bytes], bytes]) -> ArchiveEntry:
        """Store a renewed version of a record (new archive timestamp); the old one stays.

        ``renew_pdf`` is the signing side's renewal (``RecordSigner.renew``). Nothing is
        written unless the renewed record verifies; a failure is recorded as a PREMIS event
        and raised, so the scheduler retries it later.
        """
        try:
            renewed = renew_pdf(self.get(entry))
            report = self.verifier.verify(renewed)
            if not report.valid:
                raise ArchiveError("Bản gia hạn không hợp lệ: " + "; ".join(report.problems),
                                   code="renewal_invalid")
        except HsdtError as exc:
            self.index.add_event(entry.sha256, "migration", _now(), "failure", exc.message)
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"Gia hạn hồ sơ {entry.record_id} thất bại: {exc.message}",
                               code="renewal_failed") from exc
        digest = sha256_hex(renewed)
        existing = self.index.by_sha(digest)
        if existing is not None:
            return existing
        key = record_key(entry.kind, digest)
        self.index.begin_uploads([digest], _now())  # as for an ingest: journaled before written
        stored = self.store.put_locked(key, renewed, retain_until=self.retain_until,
                                       metadata={"record-id": entry.record_id, "kind": entry.kind})
        new = replace(entry, sha256=digest, key=key, version_id=stored.version_id,
                      size=stored.size, retain_until=stored.retain_until,
                      stored_at=stored.stored_at, log_index=-1, superseded_by=None,
                      renewed_from=entry.sha256)
        return self._commit([{"type": "renewal", "entry": asdict(new), "supersedes": None}])[0]

    def current(self, record_id: str) -> ArchiveEntry | None:
        """The newest stored version of the record's latest revision."""
        found = self.index.search(record_id=record_id, current_only=True)
        return max(found, key=lambda e: e.log_index) if found else None

    # -- the log and the index, together ---------------------------------------------------
    def _commit(self, events: list[dict[str, Any]]) -> list[ArchiveEntry]:
        """Append the events to the log (durable: one set of fsyncs for all), then index them.

        The log goes first: a crash in between leaves events that :meth:`recover` indexes.
        """
        at = _now()
        events = [{"schema": LOG_EVENT_SCHEMA, "at": at, **event} for event in events]
        logged = self.log.extend([canonical_json(event) for event in events])
        return self._index_events(list(zip(logged, events, strict=True)))

    def _index_events(self, logged: list[tuple[int, dict[str, Any]]]) -> list[ArchiveEntry]:
        """Index rows and their PREMIS events for logged events, in one transaction."""
        entries: list[ArchiveEntry] = []
        with self.index.transaction() as conn:
            for log_index, event in logged:
                entry = ArchiveEntry(**dict(event["entry"], log_index=log_index))
                self.index.add(entry, conn)
                if event.get("supersedes"):
                    self.index.mark_superseded(event["supersedes"], entry.sha256, conn)
                premis = {"ingest": "ingestion", "supersede": "ingestion",
                          "renewal": "migration"}.get(event["type"], event["type"])
                self.index.add_event(entry.sha256, premis, event["at"], "success",
                                     f"log #{log_index}", log_index, conn)
                entries.append(entry)
            if logged:
                self.index.set_state("log_indexed", str(logged[-1][0]), conn)
            self.index.end_uploads([e.sha256 for e in entries], conn)
        return entries

    def recover(self) -> int:
        """Index every log event that a crash left unindexed. Returns how many."""
        done = int(self.index.get_state("log_indexed") or -1)
        todo: list[tuple[int, dict[str, Any]]] = []
        seen: set[str] = set()
        for i in range(done + 1, self.log.size):
            event = json.loads(self.log.entry(i))
            if self.index.by_log_index(i) is not None or "entry" not in event:
                continue
            sha = event["entry"]["sha256"]
            if sha in seen or self.index.by_sha(sha) is not None:
                continue
            self.store.head(event["entry"]["key"], event["entry"]["version_id"])
            todo.append((i, event))
            seen.add(sha)
        if todo:
            self._index_events(todo)
        return len(todo)

    # -- reading ---------------------------------------------------------------------------
    def entries(self) -> list[ArchiveEntry]:
        return self.index.all()

    def get(self, entry: ArchiveEntry) -> bytes:
        """The stored bytes, refused unless they match both the store's and the index's SHA-256."""
        return self.store.get(entry.key, entry.version_id, sha256=entry.sha256)

    def evidence(self, entry: ArchiveEntry) -> ArchiveEvidence:
        """What the archive can prove about one stored version, for its verification report."""
        sth = self.log.signed_tree_head()
        return ArchiveEvidence(
            object_key=entry.key, version_id=entry.version_id, retain_until=entry.retain_until,
            fixity=tuple(FixityCheck(e.at, e.outcome)
                         for e in self.index.events(sha256=entry.sha256, type_="fixity check")),
            log_index=entry.log_index, tree_size=sth.size, root_hash=sth.root_hash.hex(),
            inclusion_proof=tuple(p.hex() for p in self.log.inclusion_proof(entry.log_index,
                                                                            sth.size)),
            signed_tree_head=sth.to_json())

    def report(self, entry: ArchiveEntry) -> VerificationReport:
        """A fresh verification of the stored version (offline), with the archive's evidence."""
        return self.verifier.verify(self.get(entry)).with_archive(self.evidence(entry))

    def public(self, *, record_id: str | None = None, pdf: bytes | None = None) -> PublicAnswer:
        """The public-safe answer behind a record's QR code, or for an uploaded copy compared
        byte for byte with the archive (Nghị định 13/2023: nothing the asker does not hold)."""
        if pdf is not None:
            entry = self.index.by_sha(sha256_hex(pdf))
            if entry is None:
                try:
                    claimed = read_record(pdf).record_id
                except HsdtError:
                    claimed = ""
                found = bool(claimed) and bool(self.index.search(record_id=claimed))
                return public_answer(None, superseded_by=None, found=found, matches_archive=False)
            return public_answer(self.verifier.verify(pdf), superseded_by=entry.superseded_by,
                                 found=True, matches_archive=True)
        entry = self.current(record_id or "")
        if entry is None:
            return public_answer(None, superseded_by=None, found=False, matches_archive=None)
        return public_answer(self.verifier.verify(self.get(entry)),
                             superseded_by=entry.superseded_by, found=True, matches_archive=None)

    def published_log(self) -> dict[str, Any]:
        """What anyone may fetch to keep their own copy of the log's history (as ``hsdt audit
        heads`` exports it): the log's public key, a head signed at today's size and every
        head kept so far. Tree heads say nothing about any record; they only pin the log."""
        sth = self.log.signed_tree_head()
        key = self.log.require_public_key()
        return {"log_id": self.log.log_id, "tree_head": sth.to_dict(),
                "public_key_pem": public_key_pem(key).decode("ascii"),
                "public_key_sha256": public_key_fingerprint(key),
                "heads": [h.to_dict() for h in self.log.tree_heads()]}

    def consistency(self, old_size: int) -> dict[str, Any]:
        """RFC 9162 proof that the log, at a head signed now, extends the log of ``old_size``
        entries: how a keeper of an old head checks today's without reading the log."""
        sth = self.log.signed_tree_head()
        if old_size > sth.size:
            raise LogRangeError(f"Nhật ký hiện có {sth.size} mục, ít hơn {old_size}: đầu cây "
                                "bạn giữ lớn hơn nhật ký hôm nay — nhật ký đã bị cắt bớt?")
        proof = self.log.consistency_proof(old_size, sth.size)
        return {"old_size": old_size, "new_size": sth.size, "proof": [p.hex() for p in proof],
                "tree_head": sth.to_dict()}

    def inclusion(self, entry: ArchiveEntry) -> dict[str, Any]:
        """Evidence that the entry's event is in the log: proof against a signed tree head."""
        sth = self.log.signed_tree_head()
        proof = self.log.inclusion_proof(entry.log_index, sth.size)
        return {"log_index": entry.log_index, "tree_size": sth.size,
                "leaf_hash": self.log.leaf(entry.log_index).hex(),
                "proof": [p.hex() for p in proof], "tree_head": sth.to_json()}

