"""The archive service on S3 Object Lock (radosgw): ingest, retrieve, audit, no way around."""

from __future__ import annotations

import hashlib
import uuid
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import World
from test_s3_store import _raw_client, s3_env  # noqa: F401 — session fixtures shared with the store tests

from hsdt.archive.audit import audit_log
from hsdt.archive.ingest import Archive
from hsdt.archive.s3 import S3ObjectLockStore, S3Settings


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
