"""Fuzzing the live API from its own OpenAPI (schemathesis): no input makes the server fail.

Every operation of the published document (``docs/openapi.json``, checked against the served
``/openapi.json`` below) is called with generated requests — valid ones and deliberately
invalid ones — on a running service that already holds a rendered class, signed in as the
school's administrator (the widest scope inside one school). The only assertion is
``not_a_server_error``: whatever is sent, the answer is a 2xx/4xx with a reason, never a 500.
The examples are derandomised and limited, so the run is the same every time and short.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from hsdt.domain.bundles import bundle_json

from .service_world import PASSWORD, Service

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
PRINCIPAL = "qtht"

schema = schemathesis.openapi.from_path(SPEC)


@pytest.fixture(scope="module")
def fuzzed(service: Service) -> Iterator[Service]:
    """The service with a class imported, locked, rendered and certified (real ids to hit)."""
    service.import_and_render(bundle_json(service.bundle))
    yield service


def _fresh_token(svc: Service, who: str) -> str:
    r = httpx.post(f"{svc.url}/api/v1/auth/token", json={"username": svc.username(who), "password": PASSWORD},
                   timeout=60)
    r.raise_for_status()
    return str(r.json()["access_token"])


def test_the_fuzzed_document_is_the_served_one(service: Service) -> None:
    with service.client() as c:
        served = c.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(SPEC.read_text(encoding="utf-8"))


@schema.parametrize()
@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error(case: schemathesis.Case, fuzzed: Service) -> None:
    # Signing out revokes the token it is sent with: that operation gets a token of its own.
    token = (_fresh_token(fuzzed, PRINCIPAL) if case.path.endswith("/auth/logout")
             else fuzzed.token(PRINCIPAL))
    case.call_and_validate(base_url=fuzzed.url, headers={"Authorization": f"Bearer {token}"},
                           checks=[not_a_server_error], timeout=120)
