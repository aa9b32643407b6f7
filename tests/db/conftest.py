"""Database fixtures: every test in tests/db runs on SQLite and on PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432 (trust auth; override with
``HSDT_TEST_POSTGRES_URL``). Each test session creates its own uniquely named databases from
the ``test`` database and drops them at the end, so concurrent runs never meet. If the server
cannot be reached the tests FAIL with the command that starts it — they never skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from hsdt.db.engine import make_engine
from hsdt.db.migrate import upgrade

BACKENDS = ("sqlite", "postgresql")
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
PG_CANDIDATES = (
    [os.environ["HSDT_TEST_POSTGRES_URL"]] if os.environ.get("HSDT_TEST_POSTGRES_URL") else
    ["postgresql+psycopg://postgres@127.0.0.1:5432/test", "postgresql+psycopg://root@127.0.0.1:5432/test"]
)


class PostgresServer:
    """Creates throw-away databases on the test server and drops them all at the end."""

    def __init__(self) -> None:
        errors = []
        for url in PG_CANDIDATES:
            engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except OperationalError as exc:
                engine.dispose()
                errors.append(f"{make_url(url).render_as_string()}: {str(exc.orig).strip()}")
                continue
            self.admin: Engine = engine
            self.base_url = make_url(url)
            self.created: list[str] = []
            return
        pytest.fail("PostgreSQL is required for tests/db and cannot be reached "
                    "(HSDT_TEST_POSTGRES_URL, default 127.0.0.1:5432, database `test`) — "
                    "không kết nối được PostgreSQL; kiểm thử cơ sở dữ liệu không được bỏ qua.\n"
                    + "\n".join(errors) + f"\nStart it with / khởi động bằng: {PG_START}", pytrace=False)

    def new_database(self) -> str:
        name = f"hsdt_test_{os.getpid()}_{secrets.token_hex(4)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.base_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def new_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """``new_database(backend)`` → the URL of a new, empty database on that backend.

    PostgreSQL is contacted on first use, so a run of SQLite-only tests does not need it.
    """
    counter = iter(range(1_000_000))
    server: PostgresServer | None = None

    def make(backend: str) -> str:
        nonlocal server
        if backend == "sqlite":
            path = tmp_path_factory.mktemp("db") / f"hsdt-{next(counter)}.sqlite3"
            return f"sqlite:///{path}"
        if server is None:
            server = PostgresServer()
        return server.new_database()

    yield make
    if server is not None:
        server.drop_all()


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> str:
    """A new, empty database per test, on each backend (for migration tests)."""
    return new_database(request.param)


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> str:
    """A database migrated to head once per session, on each backend."""
    url = new_database(request.param)
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test; commits become savepoints."""
    conn = engine.connect()
    outer = conn.begin()
    sess = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield sess
    finally:
        sess.close()
        outer.rollback()
        conn.close()
