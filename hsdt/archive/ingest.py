"""The archive service: verify, store write-once, log, index — in an order that survives a crash.

1. the record must verify against its plan (nothing unverified enters the archive);
2. the PDF goes to the object store under its content address (write-once; the same bytes
   again are a no-op, so a redelivered task or a re-run stores nothing twice);
3. the event is appended to the transparency log (durable before we go on);
4. the index row and a PREMIS-style event commit in one SQLite transaction.

A crash after 2 leaves an object the next ingest of the same record adopts; a crash after
3 leaves a log event that :meth:`Archive.recover` turns into its index row. Neither leaves
a duplicate or loses a record. The index is a finding aid; the store and the log are the
evidence, and `hsdt audit log` checks the three against each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hsdt.archive.index import ArchiveEntry, ArchiveIndex
from hsdt.archive.public import PublicAnswer, public_answer
from hsdt.archive.store import ObjectStore
from hsdt.archive.tlog import TransparencyLog
from hsdt.domain.canonical import canonical_json, sha256_hex
from hsdt.domain.errors import ArchiveError, HsdtError
from hsdt.signing.record_state import read_record
from hsdt.signing.verification import ArchiveEvidence, FixityCheck, VerificationReport, Verifier

PERMANENT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
LOG_EVENT_SCHEMA = "hsdt.archive-event/1"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_key(kind: str, digest: str) -> str:
    return f"records/{kind}/{digest[:2]}/{digest}.pdf"


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


class Archive:
    """Write-once archive of verified records, with an index and a transparency log."""

    def __init__(self, store: ObjectStore, root: Path, verifier: Verifier,
                 retain_until: datetime = PERMANENT, log_key: Ed25519PrivateKey | None = None
                 ) -> None:
        self.store = store
        self.root = root
        self.verifier = verifier
        self.retain_until = retain_until
        self.index = ArchiveIndex(root / "index.sqlite3")
        self.log = TransparencyLog.open(root / "log", signing_key=log_key
                                        or load_or_create_log_key(root / "log.key"))
        self.recover()

    def close(self) -> None:
        self.index.close()

    # -- ingest ----------------------------------------------------------------------------
    def ingest(self, pdf: bytes, *, supersedes: str | None = None
               ) -> tuple[ArchiveEntry, VerificationReport]:
        report = self.verifier.verify(pdf)
        if not report.valid:
            reasons = "\n  - ".join(report.problems)
            raise ArchiveError(f"Hồ sơ {report.record_id} không được lưu trữ vì chưa hợp lệ:\n"
                               f"  - {reasons}", code="ingest_refused")
        digest = sha256_hex(pdf)
        existing = self.index.by_sha(digest)
        if existing is not None:
            return existing, report  # delivered twice: stored once
        old = self.index.by_sha(supersedes) if supersedes else None
        if supersedes and old is None:
            raise ArchiveError(f"Không có hồ sơ {supersedes} để thay thế.", code="not_found")
        if old is not None and old.record_id != report.record_id:
            raise ArchiveError("Hồ sơ thay thế phải cùng mã hồ sơ với hồ sơ cũ "
                               f"({old.record_id} ≠ {report.record_id}).", code="supersede_mismatch")
        key = record_key(report.kind, digest)
        stored = self.store.put_locked(key, pdf, retain_until=self.retain_until,
                                       metadata={"record-id": report.record_id, "kind": report.kind})
        report_bytes = json.dumps(report.to_json(), ensure_ascii=False, sort_keys=True).encode()
        report_key = f"reports/{digest[:2]}/{digest}/{sha256_hex(report_bytes)}.json"
        self.store.put_locked(report_key, report_bytes, retain_until=self.retain_until,
                              metadata={"record-id": report.record_id})
        revision = 1 + sum(1 for e in self.index.search(record_id=report.record_id)
                           if e.renewed_from is None)
        entry = ArchiveEntry(
            sha256=digest, record_id=report.record_id, kind=report.kind,
            student_code=report.student_code, school_code=report.school_code,
            school_year=report.school_year, revision=revision, key=key,
            version_id=stored.version_id, size=stored.size, retain_until=stored.retain_until,
            stored_at=stored.stored_at, report_key=report_key, log_index=-1)
        event = {"type": "supersede" if old else "ingest", "entry": asdict(entry),
                 "supersedes": old.sha256 if old else None}
        return self._commit(event), report

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
        stored = self.store.put_locked(key, renewed, retain_until=self.retain_until,
                                       metadata={"record-id": entry.record_id, "kind": entry.kind})
        new = replace(entry, sha256=digest, key=key, version_id=stored.version_id,
                      size=stored.size, retain_until=stored.retain_until,
                      stored_at=stored.stored_at, log_index=-1, superseded_by=None,
                      renewed_from=entry.sha256)
        return self._commit({"type": "renewal", "entry": asdict(new), "supersedes": None})

    def current(self, record_id: str) -> ArchiveEntry | None:
        """The newest stored version of the record's latest revision."""
        found = self.index.search(record_id=record_id, current_only=True)
        return max(found, key=lambda e: e.log_index) if found else None

    # -- the log and the index, together ---------------------------------------------------
    def _commit(self, event: dict[str, Any]) -> ArchiveEntry:
        event = {"schema": LOG_EVENT_SCHEMA, "at": _now(), **event}
        log_index = self.log.append(canonical_json(event))
        return self._index_event(log_index, event)

    def _index_event(self, log_index: int, event: dict[str, Any]) -> ArchiveEntry:
        data = dict(event["entry"], log_index=log_index)
        entry = ArchiveEntry(**data)
        with self.index.transaction() as conn:
            self.index.add(entry, conn)
            if event.get("supersedes"):
                self.index.mark_superseded(event["supersedes"], entry.sha256, conn)
            premis = {"ingest": "ingestion", "supersede": "ingestion",
                      "renewal": "migration"}.get(event["type"], event["type"])
            self.index.add_event(entry.sha256, premis, event["at"], "success",
                                 f"log #{log_index}", log_index, conn)
            self.index.set_state("log_indexed", str(log_index), conn)
        return entry

    def recover(self) -> int:
        """Index every log event that a crash left unindexed. Returns how many."""
        done = int(self.index.get_state("log_indexed") or -1)
        fixed = 0
        for i in range(done + 1, self.log.size):
            event = json.loads(self.log.entry(i))
            if self.index.by_log_index(i) is not None or "entry" not in event:
                continue
            if self.index.by_sha(event["entry"]["sha256"]) is not None:
                continue
            self.store.head(event["entry"]["key"], event["entry"]["version_id"])
            self._index_event(i, event)
            fixed += 1
        return fixed

    # -- reading ---------------------------------------------------------------------------
    def entries(self) -> list[ArchiveEntry]:
        return self.index.all()

    def get(self, entry: ArchiveEntry) -> bytes:
        data = self.store.get(entry.key, entry.version_id)
        if sha256_hex(data) != entry.sha256:
            raise ArchiveError(f"«{entry.key}» không khớp SHA-256 trong chỉ mục.",
                               code="fixity_failed")
        return data

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

    def inclusion(self, entry: ArchiveEntry) -> dict[str, Any]:
        """Evidence that the entry's event is in the log: proof against a signed tree head."""
        sth = self.log.signed_tree_head()
        proof = self.log.inclusion_proof(entry.log_index, sth.size)
        return {"log_index": entry.log_index, "tree_size": sth.size,
                "leaf_hash": self.log.leaf(entry.log_index).hex(),
                "proof": [p.hex() for p in proof], "tree_head": sth.to_json()}
