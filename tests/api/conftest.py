"""The sign-in tests run on SQLite and PostgreSQL with the database tests' fixtures.

Imported as ``db.conftest`` — the name pytest itself gives ``tests/db/conftest.py`` (``tests/``
is on ``sys.path``, as for ``tests/workers``) — so that a full run shares one module with
``tests/db`` rather than loading a second copy under another name.
"""

from collections.abc import Iterator

import pytest
from db.conftest import BACKENDS, db_url, engine, new_database, session  # noqa: F401

from hsdt.domain.sample import sample_bundle

from .service_world import Service, build_service, serve_app


@pytest.fixture(scope="module")
def service(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:  # type: ignore[no-untyped-def]
    """A fresh service (SQLite, local archive) on loopback HTTP, for one test module."""
    svc = build_service(world.pki, sample_bundle(seed=5, students=4), tmp_path_factory.mktemp("svc"))
    with serve_app(svc.app) as url:
        svc.url = url
        yield svc
    svc.ctx.close()
