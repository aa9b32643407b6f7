"""Ingest: a record enters the archive only after it verifies against its plan.

Order matters for "nothing lost, nothing half-written": the object is stored (write-once,
idempotent for identical bytes) before the index line is appended, so a crash between the
two leaves an object the next ingest or the audit re-indexes, never an index entry that
points at nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from hsdt.archive.store import ObjectStore
from hsdt.domain.canonical import sha256_hex
from hsdt.domain.errors import ArchiveError
from hsdt.signing.verification import VerificationReport, Verifier

PERMANENT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True)
class ArchiveEntry:
    record_id: str
    kind: str
    student_code: str
    school_code: str
    school_year: str
    key: str
    version_id: str
    sha256: str
    size: int
    retain_until: str
    stored_at: str
    report_key: str


class Archive:
    def __init__(self, store: ObjectStore, index_path: Path, verifier: Verifier,
                 retain_until: datetime = PERMANENT) -> None:
        self.store = store
        self.index_path = index_path
        self.verifier = verifier
        self.retain_until = retain_until
        index_path.parent.mkdir(parents=True, exist_ok=True)

    def ingest(self, pdf: bytes) -> tuple[ArchiveEntry, VerificationReport]:
        report = self.verifier.verify(pdf)
        if not report.valid:
            reasons = "\n  - ".join(report.problems)
            raise ArchiveError(f"Hồ sơ {report.record_id} không được lưu trữ vì chưa hợp lệ:\n"
                               f"  - {reasons}", code="ingest_refused")
        digest = sha256_hex(pdf)
        key = f"records/{report.kind}/{digest[:2]}/{digest}.pdf"
        existing = next((e for e in self.entries() if e.key == key), None)
        if existing is not None:
            return existing, report  # delivered twice: stored once
        meta = {"record-id": report.record_id, "kind": report.kind}
        stored = self.store.put_locked(key, pdf, retain_until=self.retain_until, metadata=meta)
        # The ingest report is named by its own digest: a retry after a crash stores its
        # own report beside the first instead of colliding with it.
        report_bytes = _report_bytes(report)
        report_key = f"reports/{digest[:2]}/{digest}/{sha256_hex(report_bytes)}.json"
        self.store.put_locked(report_key, report_bytes, retain_until=self.retain_until,
                              metadata={"record-id": report.record_id})
        entry = ArchiveEntry(record_id=report.record_id, kind=report.kind,
                             student_code=report.student_code, school_code=report.school_code,
                             school_year=report.school_year, key=key, version_id=stored.version_id,
                             sha256=stored.sha256, size=stored.size,
                             retain_until=stored.retain_until, stored_at=stored.stored_at,
                             report_key=report_key)
        with open(self.index_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(entry), ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return entry, report

    def entries(self) -> Iterator[ArchiveEntry]:
        try:
            with open(self.index_path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield ArchiveEntry(**json.loads(line))
        except FileNotFoundError:
            return

    def get(self, entry: ArchiveEntry) -> bytes:
        return self.store.get(entry.key, entry.version_id)


def _report_bytes(report: VerificationReport) -> bytes:
    # A stored report records what was verified at ingest; the archivist re-verifies on read.
    return json.dumps(report.to_json(), ensure_ascii=False, indent=2, sort_keys=True).encode()

