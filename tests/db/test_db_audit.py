"""The audit log (and the other append-only tables) refuse UPDATE and DELETE on both databases:
through the ORM, through Core and ORM bulk statements, and through raw SQL that bypasses
SQLAlchemy entirely."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hsdt.db.audit import object_ref, record, record_decision
from hsdt.db.guards import ImmutableRowError
from hsdt.db.models import APPEND_ONLY_TABLES, ArchiveEvent, AuditEntry, Base, BundleLock
from hsdt.db.scope import Action, can, target_of

from .db_world import T0, build_world

AUDIT_TABLE = Base.metadata.tables["audit_log"]


@pytest.fixture
def entry(session: Session) -> AuditEntry:
    w = build_world(session)
    e = record(session, actor=w.users["prin"], action="lock_bundle", obj=w.bundles["own"], ip="203.0.113.7",
               reason="Khoá dữ liệu cuối năm (Điều 14)", details={"lớp": "7A1", "số học sinh": 40})
    session.flush()
    return e


def test_entries_are_written_and_read_back(session: Session, entry: AuditEntry) -> None:
    session.expunge_all()
    fresh = session.get(AuditEntry, entry.id)
    assert fresh is not None
    assert (fresh.actor, fresh.action, fresh.outcome) == ("prin", "lock_bundle", "ok")
    assert fresh.ip == "203.0.113.7"
    assert (fresh.object_type, fresh.object_id) == ("bundles", str(fresh.object_id))
    assert fresh.details == {"lớp": "7A1", "số học sinh": 40}
    assert fresh.at.tzinfo is not None


def test_raw_insert_gets_a_time(session: Session) -> None:
    session.execute(text("INSERT INTO audit_log (actor, action, details) "
                         "VALUES ('system:test', 'ping', '{}')"))
    at = session.scalar(select(AuditEntry.at).where(AuditEntry.action == "ping"))
    assert at is not None and at.tzinfo is not None


def test_refusals_are_logged_with_their_ground(session: Session) -> None:
    w = build_world(session)
    clerk = w.users["clerk"]
    decision = can(session, clerk, Action.SIGN_FIELD, target_of(session, w.steps["principal"]))
    e = record_decision(session, clerk, decision, w.steps["principal"], ip="198.51.100.2")
    session.flush()
    assert (e.outcome, e.action, e.details["code"]) == ("forbidden", "sign_field", "role_lacks_action")
    assert e.object_type == "signature_steps" and e.object_id == str(w.steps["principal"].id)


def test_object_ref_needs_a_stored_object(session: Session) -> None:
    with pytest.raises(ValueError, match="flush"):
        object_ref(AuditEntry(actor="x", action="y"))


# The ORM ------------------------------------------------------------------------------------
def test_orm_refuses_update(session: Session, entry: AuditEntry) -> None:
    with pytest.raises(ImmutableRowError, match="audit_log"), session.begin_nested():
        entry.reason = "sửa lại cho đẹp"
        session.flush()


def test_orm_refuses_delete(session: Session, entry: AuditEntry) -> None:
    with pytest.raises(ImmutableRowError, match="audit_log"), session.begin_nested():
        session.delete(entry)
        session.flush()


@pytest.mark.parametrize("statement", [
    pytest.param(lambda: update(AuditEntry).values(actor="x"), id="orm-update"),
    pytest.param(lambda: delete(AuditEntry), id="orm-delete"),
    pytest.param(lambda: update(AuditEntry).where(AuditEntry.id < 0).values(actor="x"),
                 id="orm-update-no-rows"),
    pytest.param(lambda: update(AUDIT_TABLE).values(actor="x"), id="core-update"),
    pytest.param(lambda: delete(AUDIT_TABLE), id="core-delete"),
])
def test_bulk_statements_refused(session: Session, entry: AuditEntry,
                                 statement: Callable[[], object]) -> None:
    with pytest.raises(ImmutableRowError), session.begin_nested():
        session.execute(statement())  # type: ignore[call-overload]


def test_bulk_update_mappings_refused(session: Session, entry: AuditEntry) -> None:
    with pytest.raises(ImmutableRowError), session.begin_nested():
        session.bulk_update_mappings(AuditEntry, [{"id": entry.id, "actor": "x"}])


def test_other_append_only_models_refused(session: Session) -> None:
    w = build_world(session)
    event = ArchiveEvent(sha256="ab" * 32, type="ingestion", at="2026-05-30T08:00:00Z", outcome="success")
    session.add(event)
    session.flush()
    lock = session.get(BundleLock, w.bundles["own"].id)
    assert lock is not None
    with pytest.raises(ImmutableRowError, match="bundle_locks"), session.begin_nested():
        lock.locked_at = T0.replace(year=2030)
        session.flush()
    with pytest.raises(ImmutableRowError, match="archive_events"), session.begin_nested():
        session.delete(event)
        session.flush()


# The database itself --------------------------------------------------------------------------
def _seed_all_append_only(session: Session) -> None:
    w = build_world(session)  # bundle_locks
    record(session, actor=w.users["sadm"], action="seed")
    session.add(ArchiveEvent(sha256="ab" * 32, type="ingestion", at="2026-05-30T08:00:00Z",
                             outcome="success"))
    session.flush()


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
@pytest.mark.parametrize("sql", [
    "UPDATE {table} SET {column} = {column}",
    "DELETE FROM {table}",
    "DELETE FROM {table} WHERE 1 = 1",
])
def test_raw_sql_refused_by_the_database(session: Session, table: str, sql: str) -> None:
    _seed_all_append_only(session)
    column = {"audit_log": "actor", "archive_events": "outcome", "bundle_locks": "locked_by_name"}[table]
    before = session.scalar(text(f"SELECT count(*) FROM {table}"))
    assert before
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        # exec_driver_sql goes straight to the driver: no SQLAlchemy hook sees it.
        session.connection().exec_driver_sql(sql.format(table=table, column=column))
    assert session.scalar(text(f"SELECT count(*) FROM {table}")) == before


def test_postgres_refuses_truncate_and_empty_updates(new_database: Callable[[str], str]) -> None:
    """PostgreSQL only: TRUNCATE (SQLite has none) and an UPDATE matching no row."""
    from hsdt.db.engine import make_engine
    from hsdt.db.migrate import upgrade

    url = new_database("postgresql")
    upgrade(url)
    engine: Engine = make_engine(url)
    try:
        with engine.connect() as conn:
            for sql in ("TRUNCATE audit_log", "UPDATE audit_log SET actor = 'x' WHERE false",
                        "TRUNCATE bundle_locks CASCADE"):
                with pytest.raises(DBAPIError, match="append-only"), conn.begin():
                    conn.exec_driver_sql(sql)
    finally:
        engine.dispose()
