"""Alembic migrations of the service's database (run them with :func:`hsdt.db.migrate.upgrade`)."""
