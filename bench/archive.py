"""Archive figures: ingest into radosgw (verification included), fixity audit against the
store's raw read throughput, and the transparency log's proofs at 10⁶ entries."""

from __future__ import annotations

import ipaddress
import os
import statistics
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.cpu import CpuMeter, pids_named
from bench.report import BenchError, Reporter, Summary
from hsdt.archive.audit import FIXITY_READERS, fixity_audit
from hsdt.archive.index import ArchiveEntry
from hsdt.archive.ingest import Archive, IngestOutcome
from hsdt.demo import open_identity
from hsdt.domain.bundles import lock_bundle
from hsdt.domain.canonical import sha256_hex
from hsdt.domain.plans import Role
from hsdt.domain.records import records_for
from hsdt.domain.sample import sample_bundle
from hsdt.heap import freeze_long_lived
from hsdt.signing import testpki
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.pades import RecordSigner, SigningEnvironment
from hsdt.signing.verification import VerificationReport, Verifier
from hsdt.workflow import render, sign_all

ENV_FILE = Path("/var/tmp/hsdt-ceph/s3.env")
STORE_DAEMONS = ("radosgw", "ceph-osd", "ceph-mon")
INGEST_RUNS = 3  # pooled batches, each into a fresh bucket: the median is reported
"""The one-node Ceph cluster's processes (scripts/services.sh): the S3 server's share."""


def _is_loopback(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def _s3_env() -> dict[str, str]:
    if not ENV_FILE.exists():
        raise BenchError(f"radosgw is not running ({ENV_FILE} missing): run `make services`")
    env = {}
    for line in ENV_FILE.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k.removeprefix("export ").strip()] = v.strip().strip("'\"")
    return env


@dataclass
class _TimedVerifier(Verifier):
    """A verifier adding up the time it spends: verification alone, one process."""

    seconds: float = 0.0

    def verify(self, pdf: bytes) -> VerificationReport:
        t0 = time.perf_counter()
        try:
            return super().verify(pdf)
        finally:
            self.seconds += time.perf_counter() - t0


@dataclass
class _ReplayVerifier(Verifier):
    """Answers with the reports the archive's verifier already made for those very bytes: to
    time the archive's own part (store, log, index) without verifying a second time."""

    reports: dict[str, VerificationReport] = field(default_factory=dict)

    def verify(self, pdf: bytes) -> VerificationReport:
        return self.reports[sha256_hex(pdf)]


def _check(outcomes: list[IngestOutcome]) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise BenchError(f"{len(failed)} records not ingested: {failed[0].error}")


def _raw_read(client: Any, bucket: str, entries: list[ArchiveEntry], readers: int) -> None:
    """GET every object and drop the bytes, as many at once as the fixity audit reads."""
    def read(e: ArchiveEntry) -> int:
        return len(client.get_object(Bucket=bucket, Key=e.key, VersionId=e.version_id)["Body"].read())

    with ThreadPoolExecutor(readers) as pool:
        for _ in pool.map(read, entries):
            pass


def _count_requests(store: Any, made: Counter[str]) -> None:
    """Count every request the store's client makes from now on, by operation."""
    def count(model: Any, **_: Any) -> None:
        made[model.name] += 1

    store._s3.meta.events.register("before-call.s3", count)


def run(workdir: Path, rep: Reporter, records: int = 24) -> None:
    from hsdt.archive.s3 import S3ObjectLockStore, S3Settings, make_client

    bundle = sample_bundle(seed=77, students=records)
    recs = records_for(lock_bundle(bundle, "bench"))
    people = [testpki.Person(t.id, t.full_name) for t in bundle.teachers]
    pki = testpki.provision(workdir / "pki", people, bundle.school.code, bundle.school.name,
                            hsm_people={bundle.school.principal_id})
    sealed: list[bytes] = []
    with testpki.serve(pki, mode="subprocess"):
        env = SigningEnvironment(pki.trust_roots(), pki.tsa_url, CertificateBindings(pki.bindings()))
        keys: dict[str, object] = {}

        def key_for(f):  # type: ignore[no-untyped-def]
            name = "seal" if f.role is Role.SCHOOL_SEAL else f.assignee
            if name not in keys:
                keys[name] = open_identity(pki, pki.identity(name))
            return keys[name]

        with RecordSigner(env) as signer:
            sealed = [sign_all(signer, r, render(r), key_for) for r in recs]
    s3 = _s3_env()

    def fresh_store() -> tuple[S3Settings, S3ObjectLockStore]:
        settings = S3Settings.from_env(s3, bucket=f"hsdt-bench-{uuid.uuid4().hex[:10]}")
        make_client(settings).create_bucket(Bucket=settings.bucket, ObjectLockEnabledForBucket=True)
        return settings, S3ObjectLockStore.open(settings)

    until = datetime.now(UTC) + timedelta(minutes=10)
    roots, bindings = pki.trust_roots(), CertificateBindings(pki.bindings())
    # Verification alone, one process: what one core allows. Measured as a verification
    # process runs: what this process holds frozen after a first record (hsdt.heap), so
    # that the collector does not walk the signing's leftovers on the bench's account.
    timed = _TimedVerifier(roots, bindings, online=False)
    timed.verify(sealed[0])
    freeze_long_lived()
    timed.seconds = 0.0
    for pdf in sealed:
        timed.verify(pdf)
    verify_ms = 1000 * timed.seconds / len(sealed)
    processes = os.cpu_count() or 1
    # One process verifying, then a pool of one per core (started with the archive).
    _settings1, store1 = fresh_store()
    serial = Archive(store1, workdir / "archive-serial", Verifier(roots, bindings, online=False),
                     retain_until=until)
    t0 = time.perf_counter()
    _check(serial.ingest_many(sealed))
    rep.figure("archive.ingest_radosgw.one_process", len(sealed) / (time.perf_counter() - t0),
               "records/s")
    serial.close()
    # The pool, as the service runs it: several batches, each into a new bucket and index
    # (the same records again would be found archived already), the median reported, since
    # this shared machine's speed wanders from one minute to the next.
    rates: list[float] = []
    cpu: dict[str, float] = {}
    requests: Counter[str] = Counter()
    archive: Archive | None = None
    for run in range(INGEST_RUNS):
        if archive is not None:
            archive.close()  # the last one is audited below
        settings, store = fresh_store()
        archive = Archive(store, workdir / f"archive-{run}", Verifier(roots, bindings, online=False),
                          retain_until=until, verify_processes=processes)
        _count_requests(store, requests)
        store_pids = pids_named(STORE_DAEMONS) if _is_loopback(settings.endpoint_url) else []
        meter = CpuMeter({"verification": archive.verification_pids(), "archive": [os.getpid()],
                          "store": store_pids})
        meter.start()
        t0 = time.perf_counter()
        outcomes = archive.ingest_many(sealed)
        rates.append(len(sealed) / (time.perf_counter() - t0))
        for group, seconds in meter.stop().items():
            cpu[group] = cpu.get(group, 0.0) + seconds
        _check(outcomes)
    assert archive is not None
    spread = Summary.of(rates)
    rep.figure("archive.ingest_radosgw", spread.median, "records/s")
    rep.comment(f"  median of n={spread.n} batches; min {spread.low:.2f}, max {spread.high:.2f}")
    rep.comment(f"  {len(sealed)} sealed records (15 signatures + B-LTA each) in one batch, each verified "
                f"offline by a pool of {processes} processes, then stored COMPLIANCE-locked, logged "
                "and indexed; target ≥ 20 records/s")
    rep.comment(f"  verification alone: {verify_ms:.0f} ms/record in one process, so at most "
                f"{1000 / verify_ms:.1f} records/s per core; "
                f"{processes * 1000 / verify_ms:.1f} records/s on {processes} cores before any storage")
    per_record = {k: 1000 * v / (INGEST_RUNS * len(sealed)) for k, v in cpu.items()}
    total_ms = sum(per_record.values())
    rep.figure("archive.ingest_radosgw.cpu_per_record", total_ms, "ms")
    store_share = (f"S3 server ({', '.join(STORE_DAEMONS)}) {per_record['store']:.0f} ms"
                   if store_pids else "S3 server not on this machine (not counted)")
    rep.comment(f"  CPU per record during those batches: verification processes "
                f"{per_record['verification']:.0f} ms, archive process (upload, log, index) "
                f"{per_record['archive']:.0f} ms, {store_share}; {processes} cores allow at most "
                f"{processes * 1000 / total_ms:.1f} records/s at that cost")
    made = ", ".join(f"{n / (INGEST_RUNS * len(sealed)):g} {op}" for op, n in requests.most_common())
    rep.figure("archive.ingest_radosgw.s3_requests_per_record",
               sum(requests.values()) / (INGEST_RUNS * len(sealed)), "requests")
    rep.comment(f"  S3 requests per record during those batches: {made} (report and record each)")
    # The archive's own part: the same records into a new bucket and index, with the reports
    # the first pass made (same bytes, same verifier) instead of verifying again.
    _settings2, store2 = fresh_store()
    replay = _ReplayVerifier(pki.trust_roots(), CertificateBindings(pki.bindings()), online=False,
                             reports={o.sha256: o.report for o in outcomes if o.report})
    storage_only = Archive(store2, workdir / "archive-storage", replay, retain_until=until)
    t0 = time.perf_counter()
    _check(storage_only.ingest_many(sealed))
    rep.figure("archive.ingest_radosgw.storage", len(sealed) / (time.perf_counter() - t0), "records/s")
    rep.comment("  the same batch without verification (its reports reused): store with Content-MD5, "
                "read back lock and SHA-256, one log append, one index commit")
    storage_only.close()
    entries = archive.entries()
    raw = make_client(settings)
    raw_times, audit_times, sequential = [], [], []
    for _ in range(15):  # 12 objects take ~30 ms: many short rounds, medians
        t0 = time.perf_counter()
        _raw_read(raw, settings.bucket, entries, FIXITY_READERS)
        raw_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fixity_audit(archive, sample=len(entries), seed=1)
        audit_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _raw_read(raw, settings.bucket, entries, 1)
        sequential.append(time.perf_counter() - t0)
    raw_rate = len(entries) / statistics.median(raw_times)
    audit_rate = len(entries) / statistics.median(audit_times)
    rep.figure("archive.raw_read", raw_rate, "objects/s")
    rep.comment(f"  plain GETs, {FIXITY_READERS} at a time as the audit reads; one at a time: "
                f"{len(entries) / statistics.median(sequential):.0f} objects/s")
    rep.figure("archive.fixity_audit", audit_rate, "objects/s")
    # Each round's audit against the raw read of the same round, so that the machine's drift
    # (this shared machine's speed wanders by 2x) does not land on one side only.
    paired = statistics.median(r / a for r, a in zip(raw_times, audit_times, strict=True))
    rep.figure("archive.fixity_vs_raw", 100 * paired, "%")
    rep.comment("  fixity: re-read with SHA-256 check, log cross-check, one PREMIS event per object; "
                "median of the 15 rounds' audit/raw throughput ratios (ratio of the medians: "
                f"{100 * audit_rate / raw_rate:.1f} %); target ≥ 80% of raw read throughput")
    archive.close()
