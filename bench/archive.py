"""Archive figures: ingest into radosgw (verification included), fixity audit against the
store's raw read throughput, and the transparency log's proofs at 10⁶ entries."""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.report import BenchError, Reporter
from hsdt.archive.audit import fixity_audit
from hsdt.archive.ingest import Archive
from hsdt.demo import open_identity
from hsdt.domain.bundles import lock_bundle
from hsdt.domain.plans import Role
from hsdt.domain.records import records_for
from hsdt.domain.sample import sample_bundle
from hsdt.signing import testpki
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.pades import RecordSigner, SigningEnvironment
from hsdt.signing.verification import Verifier
from hsdt.workflow import render, sign_all

ENV_FILE = Path("/var/tmp/hsdt-ceph/s3.env")


def _s3_env() -> dict[str, str]:
    if not ENV_FILE.exists():
        raise BenchError(f"radosgw is not running ({ENV_FILE} missing): run `make services`")
    env = {}
    for line in ENV_FILE.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env[k.removeprefix("export ").strip()] = v.strip().strip("'\"")
    return env


def run(workdir: Path, rep: Reporter, records: int = 12) -> None:
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
    settings = S3Settings.from_env(s3, bucket=f"hsdt-bench-{uuid.uuid4().hex[:10]}")
    make_client(settings).create_bucket(Bucket=settings.bucket, ObjectLockEnabledForBucket=True)
    store = S3ObjectLockStore.open(settings)
    verifier = Verifier(pki.trust_roots(), CertificateBindings(pki.bindings()), online=False)
    archive = Archive(store, workdir / "archive", verifier,
                      retain_until=datetime.now(UTC) + timedelta(minutes=10))
    t0 = time.perf_counter()
    for pdf in sealed:
        archive.ingest(pdf)
    ingest_s = time.perf_counter() - t0
    rep.figure("archive.ingest_radosgw", len(sealed) / ingest_s, "records/s")
    rep.comment(f"  {len(sealed)} sealed records (15 signatures + B-LTA each), each verified offline "
                "then stored COMPLIANCE-locked, logged and indexed; target ≥ 20 records/s")
    entries = archive.entries()
    raw = make_client(settings)
    raw_times, audit_times = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        for e in entries:
            raw.get_object(Bucket=settings.bucket, Key=e.key, VersionId=e.version_id)["Body"].read()
        raw_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fixity_audit(archive, sample=len(entries), seed=1)
        audit_times.append(time.perf_counter() - t0)
    raw_rate = len(entries) / statistics.median(raw_times)
    audit_rate = len(entries) / statistics.median(audit_times)
    rep.figure("archive.raw_read", raw_rate, "objects/s")
    rep.figure("archive.fixity_audit", audit_rate, "objects/s")
    rep.figure("archive.fixity_vs_raw", 100 * audit_rate / raw_rate, "%")
    rep.comment("  fixity: re-read with SHA-256 check, log cross-check, one PREMIS event per object; "
                "target ≥ 80% of raw read throughput")
    archive.close()
