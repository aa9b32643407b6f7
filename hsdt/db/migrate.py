"""Run the Alembic migrations from Python (and from ``python -m hsdt.db.migrate``).

The service, the tests and ``hsdt demo`` call :func:`upgrade` rather than the ``alembic``
command so that nothing depends on an ``alembic.ini`` or the working directory: the
migrations ship inside the package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import URL

from hsdt.db.engine import database_url, make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations and at ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    rendered = database_url(url).render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # configparser escaping
    return cfg


def upgrade(url: str | URL | Engine | None = None, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the newest). Safe to run when up to date."""
    _run(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str | URL | Engine | None, revision: str) -> None:
    """Step back to ``revision`` (``"base"``: drop everything the migrations created)."""
    _run(url, lambda cfg: command.downgrade(cfg, revision))


def current(url: str | URL | Engine | None = None) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""
    engine, owned = _engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def head() -> str:
    """The newest revision the package ships."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    rev = script.get_current_head()
    assert rev is not None
    return rev


def _engine(url: str | URL | Engine | None) -> tuple[Engine, bool]:
    if isinstance(url, Engine):
        return url, False
    return make_engine(url), True


def _run(url: str | URL | Engine | None, action: object) -> None:
    engine, owned = _engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(engine.url)
            cfg.attributes["connection"] = conn
            action(cfg)  # type: ignore[operator]
    finally:
        if owned:
            engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hsdt.db.migrate",
                                     description="Nâng cấp / hạ cấp lược đồ cơ sở dữ liệu HSĐT.")
    parser.add_argument("action", choices=["upgrade", "downgrade", "current"])
    parser.add_argument("revision", nargs="?", default="head")
    parser.add_argument("--url", help="mặc định: HSDT_DATABASE_URL hoặc sqlite:///var/hsdt.sqlite3")
    args = parser.parse_args(argv)
    if args.action == "upgrade":
        upgrade(args.url, args.revision)
    elif args.action == "downgrade":
        downgrade(args.url, args.revision)
    print(current(args.url) or "(trống)")


if __name__ == "__main__":
    main()
