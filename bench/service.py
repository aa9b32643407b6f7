"""The service's figures: records per minute on 1 and 2 workers, and the API's latency.

- ``workers.records_per_min.1`` / ``.2``: one class from locked bundle to archived through
  Celery workers on Redis (render, seal certification and every server-held signature,
  B-LTA, archive), 1 and then 2 worker processes; ``workers.scaling`` is the ratio (target
  ≥ 1.8×).
- ``api.pending.p50`` / ``p99``: ``GET /api/v1/signatures/pending`` with 40 signers asking at
  once over loopback HTTP, against a class of 40 whose records wait for them.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

from bench.report import BenchError, Reporter
from hsdt.domain.bundles import bundle_json, lock_bundle, locked_json
from hsdt.domain.sample import sample_bundle
from hsdt.signing import testpki

ROOT = Path(__file__).resolve().parent.parent


def _tests_on_path() -> None:
    for p in (ROOT / "tests", ROOT):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def workers_scaling(tmp: Path, rep: Reporter, students: int, rounds: int = 3) -> None:
    _tests_on_path()
    from workers.workerkit import running  # type: ignore[import-not-found]

    from hsdt.workers.pipeline import process_class

    bundle = sample_bundle(seed=11, students=students)
    locked = lock_bundle(bundle, "Văn thư (bench)")
    path = tmp / "bundle.locked.json"
    path.write_bytes(locked_json(locked))
    pki = testpki.provision(tmp / "pki", [testpki.Person(t.id, t.full_name) for t in bundle.teachers],
                            bundle.school.code, bundle.school.name, hsm_people={bundle.school.principal_id})
    rates: dict[int, list[float]] = {1: [], 2: []}
    with testpki.serve(pki, mode="subprocess"):
        # Alternating 1, 2, 1, 2, …: a slow spell of the machine falls on both sides.
        for k in range(rounds):
            for n in (1, 2):
                run_dir = tmp / f"w{n}-{k}"
                run_dir.mkdir()
                with running("redis", run_dir) as run:
                    # As a deployment names them: the keys the workers hold (warmed up at start).
                    run.workers.start(n, extra_env={"HSDT_PKI_DIR": str(pki.workdir)})
                    t0 = time.monotonic()
                    job = process_class(path, run_dir / "work", run_dir / "archive", pki.workdir,
                                        app=run.app)
                    outcome = job.wait(timeout=1800)
                    seconds = time.monotonic() - t0
                if not outcome.complete:
                    raise BenchError(f"workers {n}: incomplete run {outcome.failed} {outcome.awaiting}")
                rates[n].append(len(outcome.archived) / seconds * 60)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    rep.figure("workers.records_per_min.1", one, "records/min")
    rep.figure("workers.records_per_min.2", two, "records/min")
    rep.figure("workers.scaling", two / one, "x")
    each = ", ".join(f"{b / a:.2f}" for a, b in zip(rates[1], rates[2], strict=True))
    rep.comment(f"  medians of {rounds} runs each (1 and 2 workers alternating; ratio of each pair: "
                f"{each}); workers started and ready before the clock starts")
    rep.comment(f"workers.scaling {two / one:.2f}x "
                f"{'meets' if two / one >= 1.8 else 'misses'} the ≥ 1.8x target")


def _postgres_database() -> str:
    """A new database on the local PostgreSQL (production's database, as the API would run)."""
    import uuid

    from sqlalchemy import create_engine, text

    base = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    name = f"hsdt_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"


def api_latency(tmp: Path, rep: Reporter, signers: int = 40, rounds: int = 15) -> None:
    _tests_on_path()
    import httpx
    from api.service_world import build_service, serve_app  # type: ignore[import-not-found]

    bundle = sample_bundle(seed=5, students=40)
    pki = testpki.provision(tmp / "pki-api", [testpki.Person(t.id, t.full_name) for t in bundle.teachers],
                            bundle.school.code, bundle.school.name, hsm_people={bundle.school.principal_id})
    with testpki.serve(pki, mode="subprocess"):
        svc = build_service(pki, bundle, tmp / "svc", db_url=_postgres_database())
        with serve_app(svc.app) as url:
            svc.url = url
            svc.import_and_render(bundle_json(bundle))
            teachers = [t.id for t in bundle.teachers if t.id != bundle.school.principal_id]
            tokens = [svc.token(teachers[i % len(teachers)]) for i in range(signers)]
            latencies: list[float] = []
            lock = threading.Lock()
            start = threading.Barrier(signers)

            def signer(token: str) -> None:
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                  timeout=60) as c:
                    c.get("/api/v1/signatures/pending").raise_for_status()  # warm the connection
                    start.wait()
                    for _ in range(rounds):
                        t0 = time.perf_counter()
                        c.get("/api/v1/signatures/pending").raise_for_status()
                        with lock:
                            latencies.append(time.perf_counter() - t0)

            threads = [threading.Thread(target=signer, args=(t,)) for t in tokens]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        svc.ctx.close()
    ms = sorted(x * 1000 for x in latencies)
    rep.figure("api.pending.p50", statistics.median(ms), "ms")
    rep.figure("api.pending.p99", ms[min(len(ms) - 1, int(len(ms) * 0.99))], "ms")
    rep.comment(f"api.pending: {len(ms)} requests from {signers} concurrent signers, "
                f"each list ~{len(bundle.students)} records long")


def run(tmp: Path, rep: Reporter, students: int = 40) -> None:
    api_latency(tmp, rep)
    workers_scaling(tmp, rep, students)
