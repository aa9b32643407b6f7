"""Migrations build the schema from empty on both databases, match the models, and undo cleanly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from hsdt.db.engine import DEFAULT_URL, database_url, make_engine
from hsdt.db.migrate import current, downgrade, head, main, upgrade
from hsdt.db.models import APPEND_ONLY_TABLES, FROZEN_COLUMNS, Base


def _triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        else:
            rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        return {r[0] for r in rows}


def _expected_triggers(dialect: str) -> set[str]:
    names = {f"{t}_frozen" for t in FROZEN_COLUMNS}
    if dialect == "postgresql":
        return names | {f"{t}_append_only" for t in APPEND_ONLY_TABLES}
    return names | {f"{t}_no_{verb}" for t in APPEND_ONLY_TABLES for verb in ("update", "delete")}


def test_upgrade_from_empty(empty_url: str) -> None:
    assert current(empty_url) is None
    upgrade(empty_url)
    assert current(empty_url) == head() == "0003"
    engine = make_engine(empty_url)
    try:
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
        assert _triggers(engine) == _expected_triggers(engine.dialect.name)
        upgrade(empty_url)  # already at head: nothing to do, nothing breaks
        assert current(empty_url) == "0003"
    finally:
        engine.dispose()


def test_models_match_the_migrations(engine: Engine) -> None:
    """Autogenerate finds nothing to do: the models and the migrated schema agree."""
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []


def test_downgrade_to_base_and_back(empty_url: str) -> None:
    upgrade(empty_url)
    downgrade(empty_url, "base")
    engine = make_engine(empty_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert _triggers(engine) == set()
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                assert conn.scalar(text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'hsdt_%'")) == 0
    finally:
        engine.dispose()
    upgrade(empty_url)
    assert current(empty_url) == "0003"


def test_command_line(empty_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["upgrade", "--url", empty_url])
    assert capsys.readouterr().out.strip() == "0003"


def test_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HSDT_DATABASE_URL", raising=False)
    assert database_url().render_as_string() == DEFAULT_URL
    monkeypatch.setenv("HSDT_DATABASE_URL", "postgresql://hsdt@db.example/hsdt")
    assert database_url().drivername == "postgresql+psycopg"
    assert database_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert database_url("sqlite://").drivername == "sqlite"


def test_sqlite_settings(tmp_path: pytest.TempPathFactory) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/nested/dir/x.sqlite3")  # parent folders are created
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()
