"""The archive service on S3 Object Lock (radosgw): ingest, retrieve, audit, no way around."""

from __future__ import annotations

import hashlib
import threading
import uuid
from base64 import b64encode
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
