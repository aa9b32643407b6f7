"""Engines and sessions: SQLite embedded by default, PostgreSQL in production.

``HSDT_DATABASE_URL`` chooses the database (documented with the other ``HSDT_…`` variables):

- unset: ``sqlite:///var/hsdt.sqlite3`` — a file beside the local archive (``var/``), for one
  machine (``hsdt demo`` needs no server);
- ``postgresql://user@host/db`` (or ``postgresql+psycopg://…``): production. Plain
  ``postgresql://`` and ``postgres://`` are read as psycopg 3, the driver this project ships.

SQLite is configured so that it behaves like the production database where it matters:
foreign keys enforced, SAVEPOINTs working (SQLAlchemy, not the ``sqlite3`` module, emits
``BEGIN``), WAL so readers do not block the writer, and ``BEGIN IMMEDIATE`` so that a
transaction which reads and then writes waits for the write lock up front instead of failing
halfway with "database is locked" when two workers meet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///var/hsdt.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def database_url(url: str | URL | None = None) -> URL:
    """The URL to use: the argument, else ``HSDT_DATABASE_URL``, else the embedded SQLite file."""
    raw = url if url is not None else (os.environ.get("HSDT_DATABASE_URL") or DEFAULT_URL)
    parsed = make_url(raw)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (see :func:`database_url`) with the per-backend settings above."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if not in_memory:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine, wal=not in_memory)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy decide where transactions begin
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (API handlers return them)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back if it raises."""
    with factory() as session, session.begin():
        yield session
