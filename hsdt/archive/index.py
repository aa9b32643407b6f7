"""The archive's index: what is stored where, for whom, and what happened to it since.

SQLite in the embedded default (one file beside the store), so the index and its events
commit atomically; the service issue moves the same tables to PostgreSQL. The index is a
convenience for finding records — the store and the transparency log are the evidence,
and `hsdt audit log` checks the index against both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    sha256        TEXT PRIMARY KEY,
    record_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    student_code  TEXT NOT NULL,
    school_code   TEXT NOT NULL,
    school_year   TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    key           TEXT NOT NULL,
    version_id    TEXT NOT NULL,
    size          INTEGER NOT NULL,
    retain_until  TEXT NOT NULL,
    stored_at     TEXT NOT NULL,
    report_key    TEXT NOT NULL,
    log_index     INTEGER NOT NULL UNIQUE,
    superseded_by TEXT,
    renewed_from  TEXT
);
CREATE INDEX IF NOT EXISTS records_student ON records(student_code);
CREATE INDEX IF NOT EXISTS records_school_year ON records(school_code, school_year);
-- every ingest counts the record's earlier revisions: without this, a table scan each time
CREATE INDEX IF NOT EXISTS records_record_id ON records(record_id);
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256      TEXT NOT NULL,
    type        TEXT NOT NULL,   -- PREMIS eventType: ingestion, fixity check, replacement, …
    at          TEXT NOT NULL,   -- eventDateTime, UTC
    outcome     TEXT NOT NULL,   -- eventOutcome: success / failure
    detail      TEXT NOT NULL DEFAULT '',
    log_index   INTEGER
);
CREATE INDEX IF NOT EXISTS events_sha ON events(sha256);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- records whose objects an ingest began to write and that are not indexed yet (Archive: the
-- upload journal); committed before the first write, removed when the record is indexed
CREATE TABLE IF NOT EXISTS uploads (sha256 TEXT PRIMARY KEY, begun_at TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ArchiveEntry:
    sha256: str
    record_id: str
    kind: str
    student_code: str
    school_code: str
    school_year: str
    revision: int
    key: str
    version_id: str
    size: int
    retain_until: str
    stored_at: str
    report_key: str
    log_index: int
    superseded_by: str | None = None
    renewed_from: str | None = None

    @property
    def current(self) -> bool:
        return self.superseded_by is None


@dataclass(frozen=True)
class ArchiveEvent:
    id: int
    sha256: str
    type: str
    at: str
    outcome: str
    detail: str
    log_index: int | None


_ENTRY_COLUMNS = [f.name for f in fields(ArchiveEntry)]


class ArchiveIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- records ---------------------------------------------------------------------------
    def add(self, entry: ArchiveEntry, conn: sqlite3.Connection | None = None) -> None:
        cols = ", ".join(_ENTRY_COLUMNS)
        marks = ", ".join("?" for _ in _ENTRY_COLUMNS)
        (conn or self._db).execute(f"INSERT INTO records ({cols}) VALUES ({marks})",
                                   [getattr(entry, c) for c in _ENTRY_COLUMNS])

    def mark_superseded(self, sha256: str, by: str, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE records SET superseded_by = ? WHERE sha256 = ?", (by, sha256))

    def by_sha(self, sha256: str) -> ArchiveEntry | None:
        rows = self._select("WHERE sha256 = ?", (sha256,))
        return rows[0] if rows else None

    def by_log_index(self, log_index: int) -> ArchiveEntry | None:
        rows = self._select("WHERE log_index = ?", (log_index,))
        return rows[0] if rows else None

    def search(self, *, student_code: str | None = None, school_code: str | None = None,
               school_year: str | None = None, kind: str | None = None,
               record_id: str | None = None, current_only: bool = False) -> list[ArchiveEntry]:
        where, args = [], []
        for col, val in (("student_code", student_code), ("school_code", school_code),
                         ("school_year", school_year), ("kind", kind), ("record_id", record_id)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if current_only:
            where.append("superseded_by IS NULL")
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        return self._select(clause + " ORDER BY log_index", tuple(args))

    def all(self) -> list[ArchiveEntry]:
        return self._select("ORDER BY log_index", ())

    def after(self, log_index: int, limit: int | None = None) -> list[ArchiveEntry]:
        """Entries logged after ``log_index``, in log order, at most ``limit`` of them: what a
        resumed fixity sweep needs, without reading the whole index every run."""
        if limit is None:
            return self._select("WHERE log_index > ? ORDER BY log_index", (log_index,))
        return self._select("WHERE log_index > ? ORDER BY log_index LIMIT ?", (log_index, limit))

    def log_indexes(self) -> list[int]:
        """Every entry's log index, in log order (integers only: cheap to sample from)."""
        return [row[0] for row in self._db.execute("SELECT log_index FROM records ORDER BY log_index")]

    def by_log_indexes(self, wanted: list[int]) -> list[ArchiveEntry]:
        """The entries at these log indexes, in the order asked (unknown indexes left out)."""
        found: dict[int, ArchiveEntry] = {}
        for start in range(0, len(wanted), 500):  # well under SQLite's limit on bound variables
            chunk = wanted[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update((e.log_index, e) for e in self._select(f"WHERE log_index IN ({marks})",
                                                                tuple(chunk)))
        return [found[i] for i in wanted if i in found]

    def last_log_index(self) -> int | None:
        row = self._db.execute("SELECT MAX(log_index) FROM records").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _select(self, clause: str, args: tuple[object, ...]) -> list[ArchiveEntry]:
        cur = self._db.execute(f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM records {clause}", args)
        return [ArchiveEntry(*row) for row in cur.fetchall()]

    # -- events (PREMIS-style) -------------------------------------------------------------
    def add_event(self, sha256: str, type_: str, at: str, outcome: str, detail: str = "",
                  log_index: int | None = None, conn: sqlite3.Connection | None = None) -> None:
        (conn or self._db).execute(
            "INSERT INTO events (sha256, type, at, outcome, detail, log_index) "
            "VALUES (?, ?, ?, ?, ?, ?)", (sha256, type_, at, outcome, detail, log_index))

    def events(self, sha256: str | None = None, type_: str | None = None) -> list[ArchiveEvent]:
        where, args = [], []
        if sha256:
            where.append("sha256 = ?")
            args.append(sha256)
        if type_:
            where.append("type = ?")
            args.append(type_)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        cur = self._db.execute(
            f"SELECT id, sha256, type, at, outcome, detail, log_index FROM events {clause} "
            "ORDER BY id", tuple(args))
        return [ArchiveEvent(*row) for row in cur.fetchall()]

    # -- the upload journal (see Archive) ----------------------------------------------------
    def begin_uploads(self, digests: list[str], at: str) -> set[str]:
        """Journal these records as about to be written, durably, in one transaction; returns
        those an earlier attempt had journaled already (its objects may be in the store)."""
        with self.transaction() as conn:
            begun: set[str] = set()
            for start in range(0, len(digests), 500):  # under SQLite's limit on bound variables
                chunk = digests[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                begun.update(row[0] for row in conn.execute(
                    f"SELECT sha256 FROM uploads WHERE sha256 IN ({marks})", chunk))
            conn.executemany("INSERT OR IGNORE INTO uploads (sha256, begun_at) VALUES (?, ?)",
                             [(d, at) for d in digests])
        return begun

    def end_uploads(self, digests: list[str], conn: sqlite3.Connection | None = None) -> None:
        """Forget journaled records: indexed, or never written after all."""
        (conn or self._db).executemany("DELETE FROM uploads WHERE sha256 = ?",
                                       [(d,) for d in digests])

    def begun_uploads(self) -> list[str]:
        """Records journaled and not yet indexed: what crashed or failed attempts left."""
        return [row[0] for row in self._db.execute("SELECT sha256 FROM uploads ORDER BY sha256")]

    # -- small persistent state (audit cursors, last tree head) -----------------------------
    def get_state(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_state(self, name: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        (conn or self._db).execute(
            "INSERT INTO state (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))
