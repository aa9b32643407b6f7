"""S3 Object Lock backend: the archive on any S3 provider that implements Object Lock.

The guarantees come from the bucket, not from this class: every version is written in
COMPLIANCE mode, so until its retain-until date nobody — not this service, not the bucket
owner, not the provider's root account — can delete it, replace it or shorten its
retention. This class adds no way around that (there is no delete method) and adds what S3
does not give by itself:

- fixity: the SHA-256 of the bytes travels in the object's metadata and is checked on every
  read. The ETag is no digest one can rely on (MD5, and not even that for multipart
  uploads), and radosgw ignores SHA-256 "flexible checksums" on upload;
- integrity in transit: Content-MD5 on every upload, which S3 and radosgw do check
  (BadDigest), so damaged bytes are refused before they are locked for a century;
- write-once keys: a versioned bucket would accept a second PUT as a new version, so the
  store looks first and refuses different bytes under an existing key. The archived version
  of a key is its *first* version; a later one can only come from a write that went around
  this store, and `versions()` shows it to the audit;
- a refusal to start on a bucket without versioning or Object Lock (`check_bucket`).

Keys are content-addressed by the archive (the SHA-256 is in the key), so two writers racing
on one key with different bytes cannot happen in practice; radosgw 16 ignores
``If-None-Match: *`` on PUT, so this is not guarded by the storage.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast
from urllib.parse import quote, unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hsdt.archive.store import _KEY, StoredObject, _iso, check_digest
from hsdt.domain.errors import ArchiveError

AddressingStyle = Literal["auto", "path", "virtual"]
S3Client = Any  # boto3's client is generated at run time; no stubs are installed

# "Permanent" on S3 is the longest retention the provider accepts, kept ahead by renewal
# (extend_retention). 100 years is what AWS allows for a bucket's default retention.
DEFAULT_PERMANENT_YEARS = 100
# The latest date every provider we know can store. Ceph radosgw before 18.2.1 (Debian 12 has
# 16.2.15) keeps the date as 32-bit seconds and silently wraps a later one to 1970 — which
# *unlocks* the version (Ceph tracker #63537). Dates past this are brought back to it; set the
# ceiling to None only for a provider known to store later dates.
RETAIN_UNTIL_CEILING = datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)

# Connections one client keeps: at least the archive's concurrent uploads and fixity reads
# (more threads than connections would open and drop a connection per request).
MAX_CONCURRENT_REQUESTS = 16

_SHA_META = "hsdt-sha256"
_STORED_AT_META = "hsdt-stored-at"  # radosgw moves Last-Modified when a retention is extended
_RESERVED_PREFIX = "hsdt-"
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
_ENCODED = "utf-8''"  # RFC 8187-style prefix for metadata values that are not plain ASCII
_SHA_HEX = re.compile(r"^[0-9a-f]{64}$")
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchVersion", "405", "MethodNotAllowed"}
_LOCK_MISSING = {"ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"}


@dataclass(frozen=True)
class S3Settings:
    """Where the archive bucket is and how to talk to it.

    ``endpoint_url`` None means AWS itself; credentials None means boto3's usual chain
    (environment, profile, instance role). ``addressing_style`` "path" suits radosgw and
    MinIO on an IP address, "virtual" is what AWS prefers.
    """

    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    addressing_style: AddressingStyle = "auto"
    permanent_years: int = DEFAULT_PERMANENT_YEARS
    retain_until_ceiling: datetime | None = RETAIN_UNTIL_CEILING
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.addressing_style not in ("auto", "path", "virtual"):
            raise ArchiveError(f"addressing_style phải là auto, path hoặc virtual (đang là "
                               f"«{self.addressing_style}»).", code="bad_config")
        if not 1 <= self.permanent_years <= 1000:
            raise ArchiveError(f"permanent_years phải từ 1 đến 1000 (đang là {self.permanent_years}).",
                               code="bad_config")
        if not self.bucket:
            raise ArchiveError("Chưa đặt tên bucket lưu trữ S3.", code="bad_config")
        ceiling = self.retain_until_ceiling
        if isinstance(ceiling, str):  # from TOML or the environment
            object.__setattr__(self, "retain_until_ceiling", _parse_ceiling(ceiling))
        elif ceiling is not None and ceiling.tzinfo is None:
            raise ArchiveError("retain_until_ceiling phải có múi giờ (UTC).", code="bad_config")

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> S3Settings:
        """From a config table such as ``[archive.s3]``; an unknown key is an error, not a typo
        that silently falls back to AWS defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ArchiveError(f"Khoá cấu hình S3 không biết: {', '.join(unknown)} "
                               f"(biết: {', '.join(sorted(known))}).", code="bad_config")
        return cls(**dict(cfg))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, bucket: str | None = None) -> S3Settings:
        """From ``HSDT_S3_*`` variables (the names scripts/services.sh writes to its env file):
        ENDPOINT, REGION, ACCESS_KEY, SECRET_KEY, ADDRESSING_STYLE, BUCKET, PERMANENT_YEARS,
        RETAIN_UNTIL_CEILING (ISO 8601, or "none")."""
        env = os.environ if env is None else env
        style = env.get("HSDT_S3_ADDRESSING_STYLE", "auto")
        return cls(bucket=bucket or env.get("HSDT_S3_BUCKET", ""),
                   endpoint_url=env.get("HSDT_S3_ENDPOINT") or None,
                   region=env.get("HSDT_S3_REGION", "us-east-1"),
                   access_key=env.get("HSDT_S3_ACCESS_KEY") or None,
                   secret_key=env.get("HSDT_S3_SECRET_KEY") or None,
                   addressing_style=cast(AddressingStyle, style),
                   permanent_years=int(env.get("HSDT_S3_PERMANENT_YEARS", DEFAULT_PERMANENT_YEARS)),
                   retain_until_ceiling=_parse_ceiling(env.get("HSDT_S3_RETAIN_UNTIL_CEILING")))


def make_client(settings: S3Settings) -> S3Client:
    """A boto3 S3 client for any endpoint.

    Checksums are sent only where the API requires them: boto3 ≥ 1.36 otherwise adds CRC32
    "flexible checksums" (and, for streams, aws-chunked bodies) that older S3 implementations
    reject or ignore; this store sends Content-MD5 itself and checks SHA-256 on read.
    """
    config = Config(
        region_name=settings.region,
        signature_version="s3v4",
        s3={"addressing_style": settings.addressing_style},
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # the archive uploads and the fixity sweep reads with a few threads on one client
        max_pool_connections=MAX_CONCURRENT_REQUESTS,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.endpoint_url, aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key, config=config)


def permanent_until(years: int = DEFAULT_PERMANENT_YEARS, now: datetime | None = None,
                    ceiling: datetime | None = RETAIN_UNTIL_CEILING) -> datetime:
    """Now plus ``years`` calendar years (29 February falls back to the 28th), to the second,
    and no later than ``ceiling``."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    try:
        until = now.replace(year=now.year + years)
    except ValueError:
        until = now.replace(year=now.year + years, day=28)
    return until if ceiling is None else min(until, ceiling)


def _parse_ceiling(text: str | None) -> datetime | None:
    if text is None or text.strip() == "":
        return RETAIN_UNTIL_CEILING
    if text.strip().lower() == "none":
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ArchiveError(f"retain_until_ceiling «{text}» không phải ngày ISO 8601.",
                           code="bad_config") from None
    if parsed.tzinfo is None:
        raise ArchiveError("retain_until_ceiling phải có múi giờ (UTC).", code="bad_config")
    return parsed


class S3ObjectLockStore:
    """The archive's `ObjectStore` on an S3 bucket with Object Lock (COMPLIANCE mode).

    Deliberately has no delete, no overwrite and no way to shorten a retention: see the
    module docstring. Construction checks the bucket and refuses one that could not keep
    these promises.
    """

    def __init__(self, client: S3Client, bucket: str, *,
                 permanent_years: int = DEFAULT_PERMANENT_YEARS,
                 retain_until_ceiling: datetime | None = RETAIN_UNTIL_CEILING) -> None:
        self._s3 = client
        self.bucket = bucket
        self.permanent_years = permanent_years
        self.retain_until_ceiling = retain_until_ceiling
        self.check_bucket()
        # The listing's paginator model, loaded now, once: botocore loads it on a client's
        # first listing, without a lock, by scanning its data directories (~20 ms of CPU);
        # a batch's upload threads all list at once, and each of them loaded it.
        self._s3.can_paginate("list_object_versions")

    @classmethod
    def open(cls, settings: S3Settings) -> S3ObjectLockStore:
        return cls(make_client(settings), settings.bucket, permanent_years=settings.permanent_years,
                   retain_until_ceiling=settings.retain_until_ceiling)

    # -- the bucket ---------------------------------------------------------------------

    def check_bucket(self) -> None:
        """Refuse a bucket without versioning or without Object Lock, naming what is missing.

        Without them a "locked" PUT is either refused by the provider or, worse, accepted on
        a provider that ignores the lock headers; either way the archive would not be one.
        """
        b = self.bucket
        try:
            versioning = self._s3.get_bucket_versioning(Bucket=b).get("Status")
        except ClientError as exc:
            if _code(exc) == "NoSuchBucket":
                raise ArchiveError(f"Không có bucket «{b}» trên {self._where()}. Tạo bucket với Object "
                                   f"Lock trước (bucket does not exist).", code="bucket_unsuitable") from exc
            raise self._failure(f"kiểm tra bucket «{b}»", exc) from exc
        except BotoCoreError as exc:
            raise self._failure(f"kiểm tra bucket «{b}»", exc) from exc
        try:
            lock = self._s3.get_object_lock_configuration(Bucket=b).get("ObjectLockConfiguration", {})
            locked = lock.get("ObjectLockEnabled") == "Enabled"
        except ClientError as exc:
            if _code(exc) not in _LOCK_MISSING:
                raise self._failure(f"kiểm tra Object Lock của «{b}»", exc) from exc
            locked = False
        except BotoCoreError as exc:
            raise self._failure(f"kiểm tra Object Lock của «{b}»", exc) from exc
        missing_vi: list[str] = []
        missing_en: list[str] = []
        if versioning != "Enabled":
            missing_vi.append("versioning (lưu phiên bản)")
            missing_en.append(f"versioning is {versioning or 'not enabled'}")
        if not locked:
            missing_vi.append("Object Lock")
            missing_en.append("Object Lock is not enabled")
        if missing_vi:
            raise ArchiveError(
                f"Bucket «{b}» không dùng được làm kho lưu trữ bất biến: thiếu {' và '.join(missing_vi)}. "
                f"Hãy dùng bucket tạo với Object Lock (ObjectLockEnabledForBucket=True, tự bật versioning). "
                f"[bucket {b}: {'; '.join(missing_en)}]", code="bucket_unsuitable")

    def permanent_until(self, now: datetime | None = None) -> datetime:
        """The retain-until date that stands for "permanent" on this provider (configured)."""
        return permanent_until(self.permanent_years, now, self.retain_until_ceiling)

    # -- the protocol -------------------------------------------------------------------

    def put_locked(self, key: str, data: bytes, *, retain_until: datetime,
                   metadata: dict[str, str] | None = None,
                   legal_hold: bool = False, unwritten: bool = False) -> StoredObject:
        """Store ``data`` under ``key``, locked in COMPLIANCE mode until ``retain_until``.

        The same bytes again return the archived version (a redelivered task), its lock
        extended if it ends before ``retain_until``; different bytes are refused. A date
        beyond the configured "permanent" horizon is brought back to it (providers cap
        retention; renewal pushes it later). ``legal_hold`` adds a hold that outlives the
        date until explicitly released. On return the version is locked in COMPLIANCE mode
        until at least ``retain_until`` (or the horizon): the storage's answer is read back.

        ``unwritten``: the caller vouches that no version of ``key`` was ever written (the
        archive journals a record before writing its objects), so the listing that looks for
        an earlier version — one request of the three, and a bucket-index read for the
        server — is skipped. A PUT cannot replace a locked version; a wrong vouch would add
        a second version, which the audit reports as written outside the log.
        """
        _check_key(key)
        until = self._retention(retain_until)
        digest = hashlib.sha256(data).hexdigest()
        existing = None if unwritten else self._archived_version(key)
        if existing is not None:
            raw = self._head_raw(key, existing)
            if self._stored(key, raw).sha256 != digest:
                raise ArchiveError(
                    f"Đối tượng «{key}» đã được lưu và không thể ghi đè (lưu trữ chỉ ghi một lần).",
                    code="overwrite_refused")
            if legal_hold and raw.get("ObjectLockLegalHoldStatus") != "ON":
                self._hold(key, str(raw["VersionId"]))
            return self._lock_at_least(key, raw, until)
        md5 = hashlib.md5(data, usedforsecurity=False)
        args: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "Body": data,
            "ContentMD5": base64.b64encode(md5.digest()).decode("ascii"),
            "ContentType": mimetypes.guess_type(key)[0] or "application/octet-stream",
            "Metadata": {_SHA_META: digest, _STORED_AT_META: _iso(datetime.now(UTC)),
                         **_encode_metadata(metadata or {})},
            "ObjectLockMode": "COMPLIANCE",
            "ObjectLockRetainUntilDate": until,
        }
        if legal_hold:
            args["ObjectLockLegalHoldStatus"] = "ON"
        try:
            resp = self._s3.put_object(**args)
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(f"ghi «{key}»", exc) from exc
        version_id = resp.get("VersionId")
        if not version_id:
            raise ArchiveError(f"Kho S3 không trả mã phiên bản khi ghi «{key}»: bucket không bật versioning? "
                               f"(no VersionId returned)", code="bucket_unsuitable")
        # Read back what the storage recorded: a provider that ignores the lock headers, or
        # stores a date it cannot represent as another one, must not pass for an archive.
        raw = self._head_raw(key, version_id)
        stored = self._stored(key, raw)
        if stored.sha256 != digest:
            raise ArchiveError(f"Kho S3 ghi «{key}» với SHA-256 khác (stored digest differs).",
                               code="fixity_failed")
        self._check_lock(key, raw, until)
        return stored

    def head(self, key: str, version_id: str | None = None) -> StoredObject:
        """What is stored under ``key``: its archived (first) version unless one is named."""
        _check_key(key)
        vid = version_id or self._archived_version(key)
        if vid is None:
            raise ArchiveError(f"Không có đối tượng «{key}» trong kho.", code="not_found")
        return self._stored(key, self._head_raw(key, vid))

    def get(self, key: str, version_id: str | None = None, *, sha256: str | None = None) -> bytes:
        """The bytes of a version, refused unless they match the SHA-256 recorded at write
        (and ``sha256`` when given: the index's or the log's digest, checked by the same hash)."""
        _check_key(key)
        vid = version_id or self._archived_version(key)
        if vid is None:
            raise ArchiveError(f"Không có đối tượng «{key}» trong kho.", code="not_found")
        try:
            resp = self._s3.get_object(Bucket=self.bucket, Key=key, VersionId=vid)
            data = resp["Body"].read()
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise ArchiveError(f"Không có phiên bản {vid} của «{key}».", code="not_found") from exc
            raise self._failure(f"đọc «{key}»", exc) from exc
        except BotoCoreError as exc:
            raise self._failure(f"đọc «{key}»", exc) from exc
        stored = self._stored(key, resp)  # the metadata of this very response: no race with a head
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != stored.size or digest != stored.sha256:
            raise ArchiveError(f"«{key}» (phiên bản {vid}) không khớp SHA-256 đã ghi: dữ liệu đã bị thay "
                               f"đổi (fixity check failed).", code="fixity_failed")
        check_digest(key, digest, stored.sha256, sha256)
        return data

    def versions(self, key: str) -> list[StoredObject]:
        """Every data version of ``key``, oldest (the archived one) first.

        More than one means something wrote around this store; such a version is listed
        with ``sha256 == ""`` when it lacks our digest, so the audit sees all of them.
        """
        _check_key(key)
        return [self._stored(key, self._head_raw(key, vid), strict=False)
                for vid in self._data_versions(key)]

    def extend_retention(self, key: str, version_id: str, until: datetime) -> StoredObject:
        """Push a version's retain-until date later (renewal of "permanent" records).

        An earlier date is refused here, and the storage refuses it too (COMPLIANCE mode).
        The same date again is a no-op, so a retried renewal task is harmless.
        """
        _check_key(key)
        new = self._retention(until)
        raw = self._head_raw(key, version_id)
        current = raw.get("ObjectLockRetainUntilDate")
        if current is not None and raw.get("ObjectLockMode") == "COMPLIANCE" \
                and new < current.replace(microsecond=0):
            raise ArchiveError(
                f"Không thể rút ngắn thời hạn lưu giữ của «{key}» từ {_iso(current)} xuống {_iso(new)} "
                f"(retention can only be extended).", code="retention_shortening_refused")
        return self._lock_at_least(key, raw, new)

    # -- internals ----------------------------------------------------------------------

    def _lock_at_least(self, key: str, raw: Mapping[str, Any], until: datetime) -> StoredObject:
        """Make sure a version is locked in COMPLIANCE mode until ``until`` or later."""
        current = raw.get("ObjectLockRetainUntilDate")
        if raw.get("ObjectLockMode") == "COMPLIANCE" and current is not None and current >= until:
            return self._stored(key, raw)
        version_id = str(raw["VersionId"])
        try:
            self._s3.put_object_retention(Bucket=self.bucket, Key=key, VersionId=version_id,
                                          Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(f"đặt thời hạn lưu giữ «{key}»", exc) from exc
        raw = self._head_raw(key, version_id)
        self._check_lock(key, raw, until)
        return self._stored(key, raw)

    def _hold(self, key: str, version_id: str) -> None:
        try:
            self._s3.put_object_legal_hold(Bucket=self.bucket, Key=key, VersionId=version_id,
                                           LegalHold={"Status": "ON"})
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(f"đặt giữ pháp lý (legal hold) cho «{key}»", exc) from exc

    def _check_lock(self, key: str, raw: Mapping[str, Any], until: datetime) -> None:
        lock_until = raw.get("ObjectLockRetainUntilDate")
        if raw.get("ObjectLockMode") != "COMPLIANCE" or lock_until is None or lock_until < until:
            raise ArchiveError(
                f"Kho S3 không ghi nhận khoá COMPLIANCE đến {_iso(until)} cho «{key}» (phiên bản "
                f"{raw.get('VersionId')}): mode={raw.get('ObjectLockMode')}, retain-until="
                f"{_iso(lock_until) if lock_until else 'none'} (lock not applied as asked).",
                code="lock_not_applied")

    def _retention(self, until: datetime) -> datetime:
        """Validate a retain-until date; round up to the second (S3 dates have no more)."""
        if until.tzinfo is None:
            raise ArchiveError("Ngày lưu giữ phải có múi giờ (timezone-aware datetime).",
                               code="bad_retention")
        until = until.astimezone(UTC)
        now = datetime.now(UTC)
        if until <= now:
            raise ArchiveError(f"Ngày lưu giữ {_iso(until)} đã qua.", code="bad_retention")
        if until.microsecond:
            until = until.replace(microsecond=0) + timedelta(seconds=1)
        return min(until, self.permanent_until(now))

    def holds_nothing(self) -> bool:
        """No version and no delete marker of any key: one listing of at most one entry."""
        try:
            page = self._s3.list_object_versions(Bucket=self.bucket, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(f"liệt kê bucket «{self.bucket}»", exc) from exc
        return not page.get("Versions") and not page.get("DeleteMarkers")

    def list_versions(self, prefix: str) -> list[tuple[str, str]]:
        """Every (key, version id) under ``prefix``, delete markers left out: what the audit
        compares with the transparency log to find objects written around the service."""
        found: list[tuple[str, str]] = []
        try:
            pages = self._s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket,
                                                                            Prefix=prefix)
            for page in pages:
                found += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(f"liệt kê «{prefix}»", exc) from exc
        return found

    def _data_versions(self, key: str) -> list[str]:
        """Version ids of ``key`` (delete markers left out), oldest first.

        ListObjectVersions returns a key's versions newest first, in the order they were
        written; that order is used rather than Last-Modified, which radosgw moves when a
        retention date is changed.
        """
        found: list[str] = []
        try:
            pages = self._s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=key)
            for page in pages:
                found += [v["VersionId"] for v in page.get("Versions", []) if v.get("Key") == key]
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(f"liệt kê phiên bản «{key}»", exc) from exc
        return found[::-1]

    def _archived_version(self, key: str) -> str | None:
        ids = self._data_versions(key)
        return ids[0] if ids else None

    def _head_raw(self, key: str, version_id: str) -> dict[str, Any]:
        try:
            resp = self._s3.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            return cast(dict[str, Any], resp)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise ArchiveError(f"Không có phiên bản {version_id} của «{key}».", code="not_found") from exc
            raise self._failure(f"đọc thông tin «{key}»", exc) from exc
        except BotoCoreError as exc:
            raise self._failure(f"đọc thông tin «{key}»", exc) from exc

    def _stored(self, key: str, resp: Mapping[str, Any], *, strict: bool = True) -> StoredObject:
        meta: dict[str, str] = dict(resp.get("Metadata") or {})
        sha = meta.get(_SHA_META, "")
        if not _SHA_HEX.match(sha):
            if strict:
                raise ArchiveError(
                    f"«{key}» (phiên bản {resp.get('VersionId')}) không có SHA-256 do kho ghi: "
                    f"không kiểm tra được toàn vẹn (no recorded digest).", code="fixity_failed")
            sha = ""
        until = resp.get("ObjectLockRetainUntilDate")
        stored_at = meta.get(_STORED_AT_META) or _iso(resp["LastModified"])
        return StoredObject(key=key, version_id=str(resp.get("VersionId", "")), sha256=sha,
                            size=int(resp.get("ContentLength", 0)),
                            retain_until=_iso(until) if until is not None else "",
                            stored_at=stored_at, metadata=_decode_metadata(meta))

    def _where(self) -> str:
        return str(self._s3.meta.endpoint_url)

    def _failure(self, action: str, exc: Exception) -> ArchiveError:
        """One error for whatever the storage or the network said, naming the endpoint."""
        if isinstance(exc, ClientError):
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message") or ""
            ours = "storage_refused" if code in ("AccessDenied", "403") else "storage_error"
            return ArchiveError(f"Kho S3 {self._where()} từ chối {action}: {code} {message}".rstrip(),
                                code=ours)
        return ArchiveError(f"Không kết nối được kho S3 {self._where()} khi {action}: {exc}",
                            code="storage_unavailable")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _check_key(key: str) -> None:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ArchiveError(f"Khoá lưu trữ không hợp lệ: «{key}».", code="bad_key")


def _encode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """User metadata travels as HTTP headers: ASCII only, keys folded to lower case. Keys must
    already be lower case (so what is read back is what was written) and may not take our
    ``hsdt-`` prefix; a value that is not printable ASCII is percent-encoded UTF-8."""
    out: dict[str, str] = {}
    for k, v in metadata.items():
        if not _META_KEY.match(k) or k.startswith(_RESERVED_PREFIX):
            raise ArchiveError(f"Khoá metadata «{k}» không hợp lệ (chữ thường, số, '-'; không bắt đầu "
                               f"bằng «{_RESERVED_PREFIX}»).", code="bad_metadata")
        plain = _PRINTABLE.match(v) and not v.startswith(_ENCODED) and v == v.strip()
        out[k] = v if plain else _ENCODED + quote(v, safe="")
    return out


def _decode_metadata(raw: Mapping[str, str]) -> dict[str, str]:
    return {k: unquote(v[len(_ENCODED):]) if v.startswith(_ENCODED) else v
            for k, v in raw.items() if not k.startswith(_RESERVED_PREFIX)}


__all__ = ["DEFAULT_PERMANENT_YEARS", "RETAIN_UNTIL_CEILING", "S3ObjectLockStore", "S3Settings",
           "make_client", "permanent_until"]
