"""Fixtures for the workers: real brokers, real worker processes, a real test PKI.

- Redis (127.0.0.1:6379) and RabbitMQ (127.0.0.1:5672, guest/guest) must be running; a test
  that cannot reach one fails naming it and how to start it (never skips).
- Workers are ``celery -A hsdt.workers.app worker --concurrency 1`` subprocesses, each in its
  own session (process group) so that a test can SIGKILL a whole worker — main process and
  pool process together — and so that teardown can never leave one behind.
- Every test gets its own queue (and, on Redis, its own key prefix); teardown kills the
  workers and deletes the queue with whatever was left in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from workerkit import STUDENTS, TRANSPORTS, BrokerRun, ClassFixture, archive_summary, running

from hsdt.domain.bundles import lock_bundle, locked_json
from hsdt.domain.records import records_for
from hsdt.domain.sample import sample_bundle
from hsdt.signing import testpki
from hsdt.workers import context
from hsdt.workers.files import read_journal
from hsdt.workers.pipeline import process_class


@pytest.fixture(scope="session")
def school_class(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClassFixture]:
    """A class of five, locked once (every run processes the same bytes), and its PKI served
    out of process on loopback (TSA, OCSP, CRL) for the workers and the test process alike."""
    root = tmp_path_factory.mktemp("workers-class")
    bundle = sample_bundle(seed=11, students=STUDENTS)
    locked = lock_bundle(bundle, "Văn thư kiểm thử (workers)")
    path = root / "bundle.locked.json"
    path.write_bytes(locked_json(locked))
    people = [testpki.Person(t.id, t.full_name) for t in bundle.teachers]
    pki = testpki.provision(root / "pki", people, bundle.school.code, bundle.school.name,
                            hsm_people={bundle.school.principal_id})
    with testpki.serve(pki, mode="subprocess"):
        yield ClassFixture(path, records_for(locked), pki)
    context.reset()


@pytest.fixture
def broker_run(tmp_path: Path) -> Iterator[Callable[[str], BrokerRun]]:
    """``broker_run(transport)`` inside a test; everything is torn down after it."""
    with ExitStack() as stack:
        yield lambda transport: stack.enter_context(running(transport, tmp_path))


@pytest.fixture(scope="session")
def runs(school_class: ClassFixture, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, dict[str, Any]]:
    """The same locked class through each transport, two workers where there is a broker.

    Session-scoped: the comparison and the beat tests read what these runs left behind."""
    out: dict[str, dict[str, Any]] = {}
    for transport in TRANSPORTS:
        tmp = tmp_path_factory.mktemp(f"run-{transport}")
        with running(transport, tmp) as run:
            if transport != "embedded":
                run.workers.start(2)
            t0 = time.perf_counter()
            job = process_class(school_class.bundle_path, tmp / "work", tmp / "archive",
                                school_class.pki.workdir, app=run.app)
            try:
                outcome = job.wait(timeout=150)
            except Exception:
                print(run.workers.logs())
                raise
            seconds = time.perf_counter() - t0
            out[transport] = {
                "outcome": outcome, "seconds": seconds, "work": tmp / "work",
                "summary": archive_summary(tmp / "archive", school_class.pki, tmp / "work"),
                "journal": read_journal(tmp / "work"),
                "logs": run.workers.logs(),
            }
        print(f"{transport}: {STUDENTS} records in {seconds:.1f} s")
    return out
