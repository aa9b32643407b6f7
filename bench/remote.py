"""Remote signing's figures: a class of 40 signed by one teacher through a CSC provider.

- ``remote.csc.class40``: seconds from the teacher's approval (``credentials/authorize``,
  the PIN entered) to every record stored with its signature (target < 5 s). The preparation
  before it (every rule checked, every hash computed) is ``remote.csc.prepare40``.
- ``remote.csc.own_share``: the part of that time spent in our own process, i.e. neither
  waiting for the provider (``authorize``, ``signHash``) nor for the TSA's timestamps
  (target < 40 %).

The provider is the CSC double of the tests (a separate process, keys in its own SoftHSM2
token), the TSA/OCSP a separate process too; the service runs on PostgreSQL. Median of one
run per teacher (one subject each, so every run signs a full class of 40).
"""

from __future__ import annotations

import contextlib
import cProfile
import os
import pstats
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Reporter
from bench.service import _postgres_database, _tests_on_path
from hsdt.domain.bundles import bundle_json
from hsdt.domain.sample import sample_bundle
from hsdt.signing import testpki

TEACHERS = ("GV004", "GV005", "GV006", "GV007", "GV008")
PIN = "246810"


@dataclass
class _Clock:
    first_authorize: float | None = None
    tsa_seconds: float = 0.0
    calls: list[str] = field(default_factory=list)


def run(tmp: Path, rep: Reporter, students: int = 40) -> None:
    _tests_on_path()
    from api.service_world import build_service, serve_app  # type: ignore[import-not-found]
    from remote.csc_double import CredentialSpec, running_csc  # type: ignore[import-not-found]

    from hsdt.service import remote_signing
    from hsdt.signing.remote.csc import CscClient
    from hsdt.signing.remote.providers import CscProviderConfig, RemoteSigningConfig

    bundle = sample_bundle(seed=5, students=students)
    pki = testpki.provision(tmp / "pki-remote", [testpki.Person(t.id, t.full_name) for t in bundle.teachers],
                            bundle.school.code, bundle.school.name, hsm_people={bundle.school.principal_id})
    code_share: float | None = None
    windows: list[float] = []
    prepares: list[float] = []
    own: list[float] = []
    with testpki.serve(pki, mode="subprocess"):
        svc = build_service(pki, bundle, tmp / "svc-remote", db_url=_postgres_database())
        creds = [CredentialSpec.from_identity(pki.identity(t), credential_id=f"{t}-key", user_id=t.lower(),
                                              password="pw", pin=PIN) for t in TEACHERS]
        clocks: list[_Clock] = []
        with running_csc(tmp / "csc", creds, multisign=100) as csc, serve_app(svc.app) as url, \
                _tsa_timed(clocks):
            svc.url = url
            svc.import_and_render(bundle_json(bundle))
            svc.ctx.remote = RemoteSigningConfig.model_validate({"providers": {"mysign": {
                "kind": "csc", "display_name": "CSC (bench)", "base_url": csc.base_url}}})
            for t in TEACHERS:
                remote_signing.link_account(svc.ctx, svc.user(t).id, "mysign", t.lower())
            for t in TEACHERS:
                clock = _Clock()
                clocks.append(clock)

                profiler = cProfile.Profile() if t == TEACHERS[-1] else None

                def factory(cfg: CscProviderConfig, clock: _Clock = clock,
                            profiler: cProfile.Profile | None = profiler) -> CscClient:
                    client = CscClient(cfg.base_url, name=cfg.display_name, version=cfg.csc_version)
                    authorize = client.authorize

                    def timed(*a: Any, **kw: Any) -> Any:
                        if clock.first_authorize is None:
                            clock.first_authorize = time.perf_counter()
                            if profiler is not None:
                                profiler.enable()  # the window: from the approval on
                        return authorize(*a, **kw)

                    client.authorize = timed  # type: ignore[method-assign]
                    return client

                t0 = time.perf_counter()
                result = remote_signing.sign_with_csc(svc.ctx, svc.user(t).id, "mysign", pin=PIN,
                                                      password="pw", client_factory=factory)
                end = time.perf_counter()
                if profiler is not None:
                    profiler.disable()
                    code_share = _own_code_share(profiler)
                    if os.environ.get("HSDT_BENCH_PROFILE_OUT"):
                        profiler.dump_stats(os.environ["HSDT_BENCH_PROFILE_OUT"])
                    continue  # profiled: its times are not the figures
                if result.count("signed") != students or clock.first_authorize is None:
                    rep.comment(f"remote {t}: {result.count('signed')} signed, "
                                f"{[i for i in result.items if i.outcome != 'signed'][:2]}")
                    continue
                window = end - clock.first_authorize
                windows.append(window)
                prepares.append(clock.first_authorize - t0)
                own.append((window - result.provider_seconds - clock.tsa_seconds) / window)
        svc.ctx.close()
    if not windows:
        rep.comment("remote.csc: no complete run")
        return
    rep.figure("remote.csc.class40", statistics.median(windows), "s")
    rep.figure("remote.csc.prepare40", statistics.median(prepares), "s")
    rep.figure("remote.csc.process_share", 100 * statistics.median(own), "%")
    if code_share is not None:
        rep.figure("remote.csc.own_share", 100 * code_share, "%")
    window = statistics.median(windows)
    rep.comment(f"remote.csc: {len(windows)} classes of {students} (one teacher each, one more profiled); "
                f"approval → all stored {window:.2f} s ({'meets' if window < 5 else 'misses'} < 5 s)")
    if code_share is not None:
        rep.comment(f"remote.csc.own_share: self time in hsdt's own modules (cProfile) "
                    f"{100 * code_share:.0f}% of the window ({'meets' if code_share < 0.4 else 'misses'} "
                    f"< 40%); process_share: everything in our process (hsdt + pyHanko, cryptography, "
                    f"SQLAlchemy, psycopg), i.e. not waiting for the provider or the TSA")


def _own_code_share(profiler: cProfile.Profile) -> float:
    """Self time of functions defined in the ``hsdt`` package, over all self time profiled
    (waiting for sockets included: it is charged to the C functions that wait)."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values())
    own = sum(row[2] for (filename, _, _), row in stats.items() if f"{os.sep}hsdt{os.sep}" in filename)
    return own / total if total else 0.0


@contextlib.contextmanager
def _tsa_timed(clocks: list[_Clock]) -> Iterator[None]:
    """Count the time spent waiting for the TSA's answers (another service, like the
    provider) into the newest clock; pyHanko's HTTP timestamper is patched for the block only."""
    from pyhanko.sign.timestamps import HTTPTimeStamper

    original = HTTPTimeStamper.async_request_tsa_response

    async def measured(self: HTTPTimeStamper, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return await original(self, *a, **kw)
        finally:
            if clocks:  # the certification before the first class is not counted
                clocks[-1].tsa_seconds += time.perf_counter() - t

    HTTPTimeStamper.async_request_tsa_response = measured  # type: ignore[method-assign]
    try:
        yield
    finally:
        HTTPTimeStamper.async_request_tsa_response = original  # type: ignore[method-assign]
