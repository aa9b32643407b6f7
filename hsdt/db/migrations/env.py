"""Alembic's entry point, run by :mod:`hsdt.db.migrate` (no ``alembic.ini`` needed).

The caller passes an open connection in ``config.attributes["connection"]`` so that the
migration runs inside the caller's transaction; otherwise the URL in the config (or
``HSDT_DATABASE_URL``) is opened with :func:`hsdt.db.engine.make_engine`, so SQLite gets
the same foreign-key and transaction settings as the service.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from hsdt.db.engine import make_engine
from hsdt.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
