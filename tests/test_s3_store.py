"""The S3 Object Lock store against a real radosgw (Ceph) on loopback.

The point of these tests is that the *storage* refuses to lose an archived record, not only
our code: every attack below is made with raw boto3 calls that bypass `S3ObjectLockStore`,
and the record is checked to be still there, unchanged, afterwards.

radosgw is started by ``scripts/services.sh up`` (``make services``); its endpoint and keys
are in ``$HSDT_CEPH_DIR/s3.env``. If it cannot be reached the tests fail naming it — they
never skip. Each session uses a fresh bucket: Object Lock buckets cannot be emptied while
their objects are locked, so retention here is a few minutes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import os
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hsdt.archive.s3 import RETAIN_UNTIL_CEILING, S3ObjectLockStore, S3Settings, make_client, permanent_until
from hsdt.archive.store import LocalWormStore
from hsdt.domain.errors import ArchiveError

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services.sh"
ENV_FILE = Path(os.environ.get("HSDT_CEPH_DIR", "/var/tmp/hsdt-ceph")) / "s3.env"
HOW_TO_START = "Khởi động bằng `make services` (scripts/services.sh up)."


def _read_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in ENV_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip()
    return env


def _raw_client(env: dict[str, str], **config: Any) -> Any:
    """A plain boto3 client: what an operator or an attacker with the keys would use."""
    return boto3.client(
        "s3", endpoint_url=env["HSDT_S3_ENDPOINT"], region_name=env["HSDT_S3_REGION"],
        aws_access_key_id=env["HSDT_S3_ACCESS_KEY"], aws_secret_access_key=env["HSDT_S3_SECRET_KEY"],
        config=Config(s3={"addressing_style": "path"}, **config))


def _problem() -> str | None:
    if not ENV_FILE.exists():
        return f"không có {ENV_FILE}"
    try:
        env = _read_env()
        client = _raw_client(env, connect_timeout=3, read_timeout=5, retries={"max_attempts": 1})
        client.list_buckets()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def s3_env() -> dict[str, str]:
    problem = _problem()
    if problem is not None:
        run = subprocess.run(["bash", str(SERVICES), "up"], capture_output=True, text=True, timeout=300,
                             check=False)
        problem = _problem()
        if problem is not None:
            pytest.fail(f"radosgw (S3 Object Lock, Ceph) không truy cập được: {problem}. {HOW_TO_START}\n"
                        f"scripts/services.sh up → {run.returncode}:\n{run.stdout}{run.stderr}",
                        pytrace=False)
    return _read_env()


@pytest.fixture(scope="session")
def raw(s3_env: dict[str, str]) -> Any:
    return _raw_client(s3_env)


@pytest.fixture(scope="session")
def bucket(raw: Any) -> str:
    name = f"hsdt-test-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture(scope="session")
def store(s3_env: dict[str, str], bucket: str) -> S3ObjectLockStore:
    return S3ObjectLockStore.open(S3Settings.from_env(s3_env, bucket=bucket))


@pytest.fixture
def plain_buckets(raw: Any) -> Iterator[Callable[..., str]]:
    """Buckets without Object Lock; empty, so they can be removed afterwards."""
    made: list[str] = []

    def make(*, versioning: bool = False) -> str:
        name = f"hsdt-plain-{uuid.uuid4().hex[:12]}"
        raw.create_bucket(Bucket=name)
        if versioning:
            raw.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        made.append(name)
        return name

    yield make
    for name in made:
        raw.delete_bucket(Bucket=name)


def soon(minutes: int = 10) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes)


def new_key() -> str:
    return f"records/test/{uuid.uuid4().hex}.pdf"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def client_error(fn: Callable[[], object]) -> ClientError:
    with pytest.raises(ClientError) as info:
        fn()
    return info.value


def code_of(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def _header(headers: dict[str, Any], name: str) -> str:
    value = headers[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def test_round_trip_with_sha256(store: S3ObjectLockStore, raw: Any, bucket: str) -> None:
    key, data, until = new_key(), b"%PDF-1.7 hoc ba " + os.urandom(64), soon()
    meta = {"record-id": "HB-2025-0001", "student": "Nguyễn Thị Ánh"}
    stored = store.put_locked(key, data, retain_until=until, metadata=meta)

    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data) and stored.version_id and stored.retain_until == iso(until)
    assert stored.metadata == meta  # non-ASCII values survive the trip through HTTP headers
    assert store.get(key) == data
    assert store.get(key, stored.version_id) == data
    assert store.head(key) == stored == store.head(key, stored.version_id)
    assert store.versions(key) == [stored]

    head = raw.head_object(Bucket=bucket, Key=key, VersionId=stored.version_id)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert iso(head["ObjectLockRetainUntilDate"]) == iso(until)
    assert head["ContentType"] == "application/pdf"

    with pytest.raises(ArchiveError) as err:
        store.get("records/test/absent.pdf")
    assert err.value.code == "not_found"


def test_get_checks_the_callers_digest_too(store: S3ObjectLockStore, raw: Any, bucket: str) -> None:
    # A version written around the store with a digest of its own passes the store's check;
    # the index's digest, passed in, is checked by the same (single) hash.
    key, data = new_key(), b"%PDF genuine"
    stored = store.put_locked(key, data, retain_until=soon())
    assert store.get(key, stored.version_id, sha256=stored.sha256) == data
    forged = b"%PDF forged"
    vid = raw.put_object(Bucket=bucket, Key=key, Body=forged,
                         Metadata={"hsdt-sha256": hashlib.sha256(forged).hexdigest()})["VersionId"]
    assert store.get(key, vid) == forged  # consistent with itself...
    with pytest.raises(ArchiveError) as err:
        store.get(key, vid, sha256=stored.sha256)  # ...but not what the index holds
    assert err.value.code == "fixity_failed"
    local = LocalWormStore(Path(tempfile.mkdtemp()))
    local.put_locked("records/a.pdf", data, retain_until=soon())
    with pytest.raises(ArchiveError) as err:
        local.get("records/a.pdf", sha256=hashlib.sha256(forged).hexdigest())
    assert err.value.code == "fixity_failed"


def test_concurrent_uploads_on_one_client(store: S3ObjectLockStore, raw: Any, bucket: str) -> None:
    # The archive uploads a batch from a few threads sharing the store's boto3 client.
    items = [(new_key(), os.urandom(2048)) for _ in range(24)]
    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(lambda kv: store.put_locked(kv[0], kv[1], retain_until=soon()), items))
    for (key, data), s in zip(items, stored, strict=True):
        assert s.key == key and s.sha256 == hashlib.sha256(data).hexdigest()
        head = raw.head_object(Bucket=bucket, Key=key, VersionId=s.version_id)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert store.get(key, s.version_id, sha256=s.sha256) == data


def test_redelivery_is_idempotent_and_overwrite_refused(store: S3ObjectLockStore) -> None:
    key, data = new_key(), b"first bytes"
    first = store.put_locked(key, data, retain_until=soon())
    assert store.put_locked(key, data, retain_until=soon(5)) == first  # a redelivered task
    later = soon(20)
    again = store.put_locked(key, data, retain_until=later)  # ... asking for longer: extended
    assert (again.version_id, again.sha256) == (first.version_id, first.sha256)
    assert again.retain_until == iso(later)
    with pytest.raises(ArchiveError) as err:
        store.put_locked(key, b"other bytes", retain_until=soon())
    assert err.value.code == "overwrite_refused"
    assert store.versions(key) == [again]


def test_uploads_carry_content_md5_and_the_storage_checks_it(store: S3ObjectLockStore, raw: Any,
                                                             bucket: str) -> None:
    sent: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        if request.method == "PUT":
            sent.append(dict(request.headers))

    events = store._s3.meta.events
    events.register("before-send.s3.PutObject", capture)
    try:
        data = b"md5 please"
        store.put_locked(new_key(), data, retain_until=soon())
    finally:
        events.unregister("before-send.s3.PutObject", capture)
    assert len(sent) == 1
    assert _header(sent[0], "Content-MD5") == base64.b64encode(hashlib.md5(data).digest()).decode()

    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    exc = client_error(lambda: raw.put_object(Bucket=bucket, Key=new_key(), Body=data, ContentMD5=wrong_md5))
    assert code_of(exc) == ("BadDigest", 400)


def test_corrupted_object_is_detected_on_read(store: S3ObjectLockStore, raw: Any, bucket: str) -> None:
    # Written around the store: the recorded digest does not match the bytes.
    key = new_key()
    raw.put_object(Bucket=bucket, Key=key, Body=b"tampered bytes",
                   Metadata={"hsdt-sha256": hashlib.sha256(b"original bytes").hexdigest()},
                   ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=soon())
    with pytest.raises(ArchiveError) as err:
        store.get(key)
    assert err.value.code == "fixity_failed"

    # Written around the store without any digest: cannot be verified, so not served.
    bare = new_key()
    raw.put_object(Bucket=bucket, Key=bare, Body=b"no digest")
    with pytest.raises(ArchiveError) as err:
        store.get(bare)
    assert err.value.code == "fixity_failed"
    assert [v.sha256 for v in store.versions(bare)] == [""]  # listed for the audit, flagged


def test_storage_refuses_delete_overwrite_and_shorter_retention(store: S3ObjectLockStore, raw: Any,
                                                                bucket: str) -> None:
    key, data, until = new_key(), b"%PDF archived record", soon()
    stored = store.put_locked(key, data, retain_until=until)
    vid = stored.version_id
    shorter = until - timedelta(minutes=5)

    # Delete a version: refused by the storage, with or without the governance bypass.
    exc = client_error(lambda: raw.delete_object(Bucket=bucket, Key=key, VersionId=vid))
    assert code_of(exc) == ("AccessDenied", 403)
    exc = client_error(lambda: raw.delete_object(Bucket=bucket, Key=key, VersionId=vid,
                                                 BypassGovernanceRetention=True))
    assert code_of(exc) == ("AccessDenied", 403)
    batch = raw.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key, "VersionId": vid}]})
    assert [e["Code"] for e in batch.get("Errors", [])] == ["AccessDenied"]
    assert not batch.get("Deleted")

    # Delete without a version: S3 only adds a delete marker on top; nothing is removed.
    marker = raw.delete_object(Bucket=bucket, Key=key)
    assert marker["DeleteMarker"] is True and marker["VersionId"] != vid

    # Shorten the retention, or switch it to GOVERNANCE: refused by the storage.
    exc = client_error(lambda: raw.put_object_retention(
        Bucket=bucket, Key=key, VersionId=vid, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": shorter}))
    assert code_of(exc) == ("AccessDenied", 403)
    exc = client_error(lambda: raw.put_object_retention(
        Bucket=bucket, Key=key, VersionId=vid, BypassGovernanceRetention=True,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}))
    assert code_of(exc) == ("AccessDenied", 403)

    # Overwrite: the storage cannot replace a version, only add one; our store refuses.
    foreign = raw.put_object(Bucket=bucket, Key=key, Body=b"a forged record")
    assert foreign["VersionId"] != vid
    with pytest.raises(ArchiveError) as err:
        store.put_locked(key, b"a forged record", retain_until=soon())
    assert err.value.code == "overwrite_refused"

    # The archived record is still there and unchanged, and still what the key means.
    assert raw.get_object(Bucket=bucket, Key=key, VersionId=vid)["Body"].read() == data
    head = raw.head_object(Bucket=bucket, Key=key, VersionId=vid)
    assert (head["ObjectLockMode"], iso(head["ObjectLockRetainUntilDate"])) == ("COMPLIANCE", iso(until))
    assert store.get(key) == data == store.get(key, vid)
    assert store.head(key) == stored
    assert store.put_locked(key, data, retain_until=until) == stored  # redelivery still finds it
    assert [(v.version_id, v.sha256) for v in store.versions(key)] == [
        (vid, stored.sha256), (foreign["VersionId"], "")]  # the forgery is visible to the audit


def test_extend_retention_only_pushes_later(store: S3ObjectLockStore, raw: Any, bucket: str) -> None:
    key = new_key()
    stored = store.put_locked(key, b"renew me", retain_until=soon(5))
    later = soon(30)
    extended = store.extend_retention(key, stored.version_id, later)
    assert extended.retain_until == iso(later) and extended.stored_at == stored.stored_at
    head = raw.head_object(Bucket=bucket, Key=key, VersionId=stored.version_id)
    assert iso(head["ObjectLockRetainUntilDate"]) == iso(later)
    assert store.extend_retention(key, stored.version_id, later) == extended  # a retried renewal

    with pytest.raises(ArchiveError) as err:
        store.extend_retention(key, stored.version_id, soon(10))
    assert err.value.code == "retention_shortening_refused"
    exc = client_error(lambda: raw.put_object_retention(
        Bucket=bucket, Key=key, VersionId=stored.version_id,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon(10)}))
    assert code_of(exc) == ("AccessDenied", 403)
    assert store.head(key).retain_until == iso(later)


def test_legal_hold(store: S3ObjectLockStore, raw: Any, bucket: str) -> None:
    key = new_key()
    stored = store.put_locked(key, b"held", retain_until=soon(), legal_hold=True)
    hold = raw.get_object_legal_hold(Bucket=bucket, Key=key, VersionId=stored.version_id)
    assert hold["LegalHold"]["Status"] == "ON"
    exc = client_error(lambda: raw.delete_object(Bucket=bucket, Key=key, VersionId=stored.version_id))
    assert code_of(exc) == ("AccessDenied", 403)

    later = new_key()  # a hold asked for on redelivery is added to the archived version
    until = soon()  # one date for both calls: a later second would (rightly) extend the lock
    first = store.put_locked(later, b"held later", retain_until=until)
    assert store.put_locked(later, b"held later", retain_until=until, legal_hold=True) == first
    hold = raw.get_object_legal_hold(Bucket=bucket, Key=later, VersionId=first.version_id)
    assert hold["LegalHold"]["Status"] == "ON"


def test_settings_from_config() -> None:
    settings = S3Settings.from_mapping({"bucket": "hs", "endpoint_url": "https://s3.example.vn",
                                        "addressing_style": "virtual", "permanent_years": 50,
                                        "retain_until_ceiling": "none"})
    assert (settings.addressing_style, settings.permanent_years, settings.retain_until_ceiling) == (
        "virtual", 50, None)
    client = make_client(settings)
    assert client.meta.config.s3["addressing_style"] == "virtual"
    assert client.meta.endpoint_url == "https://s3.example.vn"
    assert S3Settings.from_env({"HSDT_S3_BUCKET": "hs"}).retain_until_ceiling == RETAIN_UNTIL_CEILING
    for bad in ({"bucket": "hs", "endpoint": "x"}, {"bucket": "hs", "addressing_style": "dns"},
                {"bucket": "hs", "retain_until_ceiling": "2106-02-07"}, {"bucket": ""}):
        with pytest.raises(ArchiveError) as err:
            S3Settings.from_mapping(bad)
        assert err.value.code == "bad_config"


PERMANENT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # what ingest asks for


def test_permanent_is_the_configured_horizon(store: S3ObjectLockStore) -> None:
    # 100 years from now, but no later than the ceiling radosgw 16 can store (2106-02-07).
    assert store.permanent_until() == min(permanent_until(100), RETAIN_UNTIL_CEILING)
    stored = store.put_locked(new_key(), b"kept as long as the storage can", retain_until=PERMANENT)
    assert stored.retain_until == iso(store.permanent_until()) == "2106-02-07T06:28:15Z"


def test_a_date_the_storage_cannot_keep_is_caught(s3_env: dict[str, str], bucket: str) -> None:
    # Without the ceiling, 100 years is past 2106: radosgw 16 wraps the date into the past — the
    # read-back after the write sees it and refuses to report the record as locked.
    unbounded = S3ObjectLockStore.open(S3Settings.from_env(
        {**s3_env, "HSDT_S3_RETAIN_UNTIL_CEILING": "none"}, bucket=bucket))
    try:
        stored = unbounded.put_locked(new_key(), b"too far", retain_until=PERMANENT)
    except ArchiveError as err:
        assert err.code == "lock_not_applied"
    else:  # a radosgw with the fix (Ceph >= 18.2.1) stores the date as asked
        assert stored.retain_until == iso(unbounded.permanent_until())


def test_a_lock_lost_behind_our_back_is_restored_on_redelivery(store: S3ObjectLockStore, raw: Any,
                                                               bucket: str) -> None:
    key, data = new_key(), b"re-lock me"
    stored = store.put_locked(key, data, retain_until=soon())
    far = datetime.fromtimestamp(2**32 + 60, UTC)  # radosgw 16 keeps this as 1970-01-01T00:01:00Z
    with contextlib.suppress(ClientError):  # a fixed radosgw may refuse it outright
        raw.put_object_retention(Bucket=bucket, Key=key, VersionId=stored.version_id,
                                 Retention={"Mode": "COMPLIANCE", "RetainUntilDate": far})
    until = soon(15)
    again = store.put_locked(key, data, retain_until=until)
    assert again.version_id == stored.version_id and again.retain_until >= iso(until)
    head = raw.head_object(Bucket=bucket, Key=key, VersionId=stored.version_id)
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] >= until


@pytest.mark.xfail(strict=True, reason=(
    "radosgw < 18.2.1 (Debian 12 ships 16.2.15) stores retain-until as 32-bit seconds: a date after "
    "2106-02-07 wraps to 1970 and UNLOCKS the version — Ceph tracker #63537, fixed by ceph/ceph#54516. "
    "Strict: when the storage is fixed this turns red; then drop the marker."))
def test_storage_refuses_a_retain_until_it_cannot_store(store: S3ObjectLockStore, raw: Any,
                                                        bucket: str) -> None:
    stored = store.put_locked(new_key(), b"wrap", retain_until=soon())
    far = datetime.fromtimestamp(2**32 + 60, UTC)
    try:
        raw.put_object_retention(Bucket=bucket, Key=stored.key, VersionId=stored.version_id,
                                 Retention={"Mode": "COMPLIANCE", "RetainUntilDate": far})
    except ClientError:
        return
    head = raw.head_object(Bucket=bucket, Key=stored.key, VersionId=stored.version_id)
    assert head["ObjectLockRetainUntilDate"] >= far


def test_bad_retention_and_metadata_refused(store: S3ObjectLockStore) -> None:
    for bad in (datetime(2099, 1, 1), datetime.now(UTC) - timedelta(seconds=1)):  # naive; past
        with pytest.raises(ArchiveError) as err:
            store.put_locked(new_key(), b"x", retain_until=bad)
        assert err.value.code == "bad_retention"
    for meta in ({"Record-Id": "x"}, {"hsdt-sha256": "0" * 64}):
        with pytest.raises(ArchiveError) as err:
            store.put_locked(new_key(), b"x", retain_until=soon(), metadata=meta)
        assert err.value.code == "bad_metadata"


def test_check_bucket_names_what_is_missing(s3_env: dict[str, str],
                                            plain_buckets: Callable[..., str]) -> None:
    client = make_client(S3Settings.from_env(s3_env, bucket="unused"))
    plain = plain_buckets()
    with pytest.raises(ArchiveError) as err:
        S3ObjectLockStore(client, plain)
    assert err.value.code == "bucket_unsuitable"
    message = err.value.message
    assert "versioning" in message and "Object Lock" in message and plain in message

    versioned = plain_buckets(versioning=True)
    with pytest.raises(ArchiveError) as err:
        S3ObjectLockStore(client, versioned)
    assert "Object Lock is not enabled" in err.value.message and "versioning is" not in err.value.message

    with pytest.raises(ArchiveError) as err:
        S3ObjectLockStore(client, "hsdt-no-such-bucket")
    assert err.value.code == "bucket_unsuitable" and "hsdt-no-such-bucket" in err.value.message


def test_no_way_to_delete(store: S3ObjectLockStore, tmp_path: Path) -> None:
    for s in (store, LocalWormStore(tmp_path)):
        for name in ("delete", "delete_object", "delete_version", "remove", "purge", "shorten_retention"):
            assert not hasattr(s, name), f"{type(s).__name__}.{name}"
        public = [n for n in dir(s) if not n.startswith("_")]
        assert not [n for n in public if any(w in n for w in ("delete", "remove", "purge", "unlink"))]


def test_virtual_host_addressing(s3_env: dict[str, str], bucket: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # radosgw is configured with `rgw dns name = localhost`; let <bucket>.localhost resolve.
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = s3_env["HSDT_S3_ENDPOINT"].rsplit(":", 1)[1]
    settings = S3Settings.from_env({**s3_env, "HSDT_S3_ENDPOINT": f"http://localhost:{port}",
                                    "HSDT_S3_ADDRESSING_STYLE": "virtual"}, bucket=bucket)
    vhost = S3ObjectLockStore.open(settings)
    urls: list[str] = []
    vhost._s3.meta.events.register("before-send.s3.*", lambda request, **_: urls.append(request.url))
    key = new_key()
    vhost.put_locked(key, b"virtual host", retain_until=soon())
    assert vhost.get(key) == b"virtual host"
    assert urls and all(u.startswith(f"http://{bucket}.localhost:{port}/") for u in urls)


def test_local_store_extend_retention(tmp_path: Path) -> None:
    local = LocalWormStore(tmp_path)
    stored = local.put_locked("records/a.pdf", b"a", retain_until=soon(5), legal_hold=True)
    later = soon(60)
    extended = local.extend_retention("records/a.pdf", stored.version_id, later)
    assert extended.retain_until == iso(later) and local.head("records/a.pdf") == extended
    assert local.extend_retention("records/a.pdf", stored.version_id, later) == extended
    with pytest.raises(ArchiveError) as err:
        local.extend_retention("records/a.pdf", stored.version_id, soon(10))
    assert err.value.code == "retention_shortening_refused"
    with pytest.raises(ArchiveError) as err:
        local.extend_retention("records/a.pdf", "not-a-version", later)
    assert err.value.code == "not_found"
    assert local.get("records/a.pdf") == b"a"


def _status(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SERVICES), "status"], capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, **(env or {})})


def test_services_status_says_the_store_takes_writes(s3_env: dict[str, str]) -> None:
    run = _status()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "S3: ghi được (takes writes)" in run.stdout


def test_services_status_names_a_store_that_answers_but_takes_no_writes(tmp_path: Path) -> None:
    """What a full memstore OSD looks like from outside: reads answer, a write never does.
    `up` rebuilds such a cluster instead of reusing it; `status` says so and fails."""
    class Stuck(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_PUT(self) -> None:
            released.wait(30)  # the write the full OSD dropped: no answer

        def log_message(self, *args: object) -> None:
            pass

    released = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stuck)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run = _status({"HSDT_CEPH_DIR": str(tmp_path / "ceph"), "HSDT_S3_PORT": str(server.server_port),
                       "HSDT_S3_WRITE_PROBE_SECONDS": "1"})
    finally:
        released.set()
        server.shutdown()
        server.server_close()
    assert run.returncode == 1
    assert f"S3: http://127.0.0.1:{server.server_port} trả lời (answers)" in run.stdout
    assert "S3: không ghi được sau 1 s (OSD đầy?" in run.stdout
