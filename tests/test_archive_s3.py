"""The archive service on S3 Object Lock (radosgw): ingest, retrieve, audit, no way around."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from base64 import b64encode
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.loaders import Loader
from conftest import World
from test_s3_store import _raw_client, s3_env  # noqa: F401 — session fixtures shared with the store tests

from hsdt.archive.audit import audit_log, fixity_audit
from hsdt.archive.ingest import Archive
from hsdt.archive.s3 import S3ObjectLockStore, S3Settings
from hsdt.domain.canonical import sha256_hex
from hsdt.workflow import render


@pytest.fixture
def s3_archive(world: World, s3_env: dict[str, str], tmp_path: Path) -> tuple[Archive, Any, str]:  # noqa: F811
    raw = _raw_client(s3_env)
    bucket = f"hsdt-archive-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    store = S3ObjectLockStore.open(S3Settings.from_env(s3_env, bucket=bucket))
    # short retention: test buckets must be removable by the next `services.sh down/up`
    archive = Archive(store, tmp_path, world.verifier(online=False),
                      retain_until=datetime.now(UTC) + timedelta(minutes=10))
    return archive, raw, bucket


def test_ingest_get_and_audit_on_radosgw(world: World, sealed: bytes,
                                         s3_archive: tuple[Archive, Any, str]) -> None:
    archive, raw, bucket = s3_archive
    entry, report = archive.ingest(sealed)
    assert report.valid and archive.get(entry) == sealed
    lock = raw.get_object_retention(Bucket=bucket, Key=entry.key, VersionId=entry.version_id)
    assert lock["Retention"]["Mode"] == "COMPLIANCE"
    assert audit_log(archive) == []
    # the storage refuses to delete the archived version
    with pytest.raises(Exception, match="AccessDenied"):
        raw.delete_object(Bucket=bucket, Key=entry.key, VersionId=entry.version_id)
    # a version written around the service (an attacker with the keys) is found by the audit
    forged = sealed.replace(b"%%EOF", b"%%EOF ", 1)
    raw.put_object(Bucket=bucket, Key=entry.key, Body=forged,
                   ContentMD5=b64encode(hashlib.md5(forged).digest()).decode())
    assert archive.get(entry) == sealed  # the archived version is still what we serve
    assert {f.code for f in audit_log(archive)} == {"object_outside_log"}


def test_batch_ingest_on_radosgw(world: World, sealed: bytes, s3_archive: tuple[Archive, Any, str]) -> None:
    """A batch: every stored record locked COMPLIANCE, the refused one nowhere, all audited clean."""
    archive, raw, bucket = s3_archive
    renewed = world.signer.renew(sealed)
    out = archive.ingest_many([sealed, render(world.records[3]), renewed])
    assert [o.ok for o in out] == [True, False, True]
    assert out[1].error is not None and out[1].error.code == "ingest_refused"
    assert archive.log.size == 2 and [e.revision for e in archive.entries()] == [1, 2]
    for o in (out[0], out[2]):
        assert o.entry is not None
        for key, version in ((o.entry.key, o.entry.version_id), (o.entry.report_key, None)):
            args = {"VersionId": version} if version else {}
            head = raw.head_object(Bucket=bucket, Key=key, **args)
            assert head["ObjectLockMode"] == "COMPLIANCE"
            assert head["ObjectLockRetainUntilDate"] >= datetime.now(UTC) + timedelta(minutes=9)
    listed = raw.list_object_versions(Bucket=bucket, Prefix="records/")["Versions"]
    assert sorted(v["VersionId"] for v in listed) == sorted(e.version_id for e in archive.entries())
    assert audit_log(archive) == []
    run = fixity_audit(archive)
    assert run.checked == 2 and not run.failures and run.completed_sweep


def test_a_batch_loads_no_botocore_model(world: World, sealed: bytes,
                                        s3_archive: tuple[Archive, Any, str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the store's client needs is loaded when the store is made: botocore loads the
    listing's paginator model on first use, without a lock, and a batch's upload threads,
    all listing at once, each loaded it (8 × ~20 ms of CPU per batch)."""
    archive, _raw, _bucket = s3_archive
    loaded: list[str] = []
    original = Loader.load_service_model

    def counted(self: Loader, *args: Any, **kwargs: Any) -> Any:
        loaded.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Loader, "load_service_model", counted)
    out = archive.ingest_many([sealed, world.signer.renew(sealed)])
    assert [o.ok for o in out] == [True, True] and loaded == []


def test_cli_on_s3_backend(world: World, sealed: bytes, s3_env: dict[str, str],  # noqa: F811
                           tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hsdt.cli import app

    raw = _raw_client(s3_env)
    bucket = f"hsdt-cli-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    env = {**s3_env, "HSDT_ARCHIVE_BACKEND": "s3", "HSDT_S3_BUCKET": bucket,
           "HSDT_S3_PERMANENT_YEARS": "1"}
    f = tmp_path / "r.pdf"
    f.write_bytes(sealed)
    pki = ["--pki", str(world.pki.workdir)]
    runner = CliRunner()
    r = runner.invoke(app, ["archive", "ingest", str(f), "--root", str(tmp_path / "idx"), *pki], env=env)
    assert r.exit_code == 0, r.output
    listed = raw.list_object_versions(Bucket=bucket, Prefix="records/")["Versions"]
    assert len(listed) == 1
    r = runner.invoke(app, ["audit", "log", "--root", str(tmp_path / "idx"), *pki], env=env)
    assert r.exit_code == 0, r.output
    # a bucket without Object Lock is refused at start-up, naming what is missing
    plain = f"hsdt-plain-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=plain)
    r = runner.invoke(app, ["audit", "log", "--root", str(tmp_path / "idx"), *pki],
                      env={**env, "HSDT_S3_BUCKET": plain})
    assert r.exit_code != 0 and "Object Lock" in r.output
    raw.delete_bucket(Bucket=plain)


def _requests(store: S3ObjectLockStore) -> Counter[str]:
    """Every request the store's client makes from now on, by operation."""
    made: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        made[model.name] += 1

    store._s3.meta.events.register("before-call.s3", count)
    return made


def test_a_batch_into_a_journaled_archive_writes_without_looking_first(
        world: World, sealed: bytes, s3_archive: tuple[Archive, Any, str]) -> None:
    """An archive that has journaled since its bucket was empty knows that a record neither
    indexed nor journaled has no object yet: two requests per record instead of three."""
    archive, raw, bucket = s3_archive
    assert archive.index.get_state("upload_journal") == "complete"
    assert isinstance(archive.store, S3ObjectLockStore)
    made = _requests(archive.store)
    out = archive.ingest_many([sealed, world.signer.renew(sealed)])
    assert [o.ok for o in out] == [True, True]
    # a report and a record each: PUT, then the lock read back; no listing
    assert made == Counter({"PutObject": 4, "HeadObject": 4})
    assert archive.index.begun_uploads() == []  # indexed: forgotten by the journal
    listed = raw.list_object_versions(Bucket=bucket, Prefix="records/")["Versions"]
    assert sorted(v["VersionId"] for v in listed) == sorted(e.version_id for e in archive.entries())
    assert audit_log(archive) == []


def test_an_index_new_to_a_bucket_that_holds_records_looks_before_writing(
        world: World, sealed: bytes, s3_env: dict[str, str],  # noqa: F811
        s3_archive: tuple[Archive, Any, str], tmp_path: Path) -> None:
    """A second index over a bucket that already holds objects cannot know what is in it:
    it looks before every write, and adopts what is there instead of adding a version."""
    first, raw, bucket = s3_archive
    entry, _ = first.ingest(sealed)
    store = S3ObjectLockStore.open(S3Settings.from_env(s3_env, bucket=bucket))
    second = Archive(store, tmp_path / "second", world.verifier(online=False),
                     retain_until=datetime.now(UTC) + timedelta(minutes=10))
    assert second.index.get_state("upload_journal") == "partial"
    made = _requests(store)
    adopted, _ = second.ingest(sealed)
    assert made["ListObjectVersions"] == 2  # for the report and for the record
    assert (adopted.key, adopted.version_id) == (entry.key, entry.version_id)
    listed = raw.list_object_versions(Bucket=bucket, Prefix="records/")["Versions"]
    assert [v["VersionId"] for v in listed] == [entry.version_id]


_CRASH_ON_S3 = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from hsdt.archive import ingest
    from hsdt.archive.s3 import S3ObjectLockStore, S3Settings
    from hsdt.signing import testpki
    from hsdt.signing.bindings import CertificateBindings
    from hsdt.signing.verification import Verifier
    root, pki_dir, pdf, bucket = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    pki = testpki.load(pki_dir)
    ingest.TransparencyLog.extend = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    store = S3ObjectLockStore.open(S3Settings.from_env(bucket=bucket))
    archive = ingest.Archive(store, root, Verifier(pki.trust_roots(), CertificateBindings(pki.bindings()),
                                                   online=False),
                             retain_until=datetime.now(UTC) + timedelta(minutes=10))
    archive.ingest(pdf.read_bytes())
""")


def test_an_ingest_killed_after_writing_is_completed_without_a_second_version(
        world: World, sealed: bytes, s3_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    """Killed between the store write and the log: the journal still names the record, so the
    next run looks for its objects and adopts them — one version in the bucket, all indexed."""
    raw = _raw_client(s3_env)
    bucket = f"hsdt-crash-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    pdf = tmp_path / "record.pdf"
    pdf.write_bytes(sealed)
    root = tmp_path / "archive"
    run = subprocess.run([sys.executable, "-c", _CRASH_ON_S3, str(root), str(world.pki.workdir),
                          str(pdf), bucket], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **s3_env})
    assert run.returncode == -9, run.stderr  # really killed, after the writes
    written = raw.list_object_versions(Bucket=bucket, Prefix="records/")["Versions"]
    assert len(written) == 1
    store = S3ObjectLockStore.open(S3Settings.from_env(s3_env, bucket=bucket))
    archive = Archive(store, root, world.verifier(online=False),
                      retain_until=datetime.now(UTC) + timedelta(minutes=10))
    assert archive.entries() == [] and archive.index.begun_uploads() == [sha256_hex(sealed)]
    assert [f.code for f in audit_log(archive)] == ["object_ingest_interrupted"]
    entry, _ = archive.ingest(sealed)
    assert entry.version_id == written[0]["VersionId"]
    listed = raw.list_object_versions(Bucket=bucket, Prefix="records/")["Versions"]
    assert [v["VersionId"] for v in listed] == [entry.version_id]
    assert archive.index.begun_uploads() == [] and audit_log(archive) == []
