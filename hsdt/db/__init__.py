"""Persistence for the service: SQLAlchemy 2 models, Alembic migrations, scope rules.

The public face is small: :func:`make_engine` and :func:`session_factory` (engine.py), the
models (models.py), :func:`hsdt.db.migrate.upgrade`, and the scope rules
(:func:`hsdt.db.scope.can`). SQLite is the embedded default, PostgreSQL the production
database; both run the same migrations and the same tests.
"""

from __future__ import annotations

from hsdt.db import guards as _guards  # noqa: F401  (ORM hooks must exist before any session)
from hsdt.db.engine import database_url, make_engine, session_factory, session_scope

__all__ = ["database_url", "make_engine", "session_factory", "session_scope"]
