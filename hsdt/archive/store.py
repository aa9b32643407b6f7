"""Object stores for archived records: write once, read many, never delete.

The protocol has no delete and no overwrite on purpose: a record is permanent, and the
only way to change what the archive holds is to add a new object (a new revision or a
renewed timestamp) that refers to the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from hsdt.domain.errors import ArchiveError
from hsdt.durable import fsync_dir, publish_once

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,511}$")


@dataclass(frozen=True)
class StoredObject:
    key: str
    version_id: str
    sha256: str
    size: int
    retain_until: str  # ISO 8601 UTC
    stored_at: str
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    """What every archive backend offers. There is deliberately no delete.

    Retention only ever grows: `extend_retention` pushes a version's retain-until date later
    (the renewal job keeps "permanent" records ahead of the provider's maximum) and refuses
    an earlier date, as S3 Object Lock in COMPLIANCE mode does.
    """

    def put_locked(self, key: str, data: bytes, *, retain_until: datetime,
                   metadata: dict[str, str] | None = None,
                   legal_hold: bool = False, unwritten: bool = False) -> StoredObject:
        """Store ``data`` under ``key``, locked until ``retain_until``; the same bytes again
        return what is stored, other bytes are refused. ``unwritten``: the caller knows that
        nothing was ever written under ``key`` (it journals every key before writing it), so
        a store may skip looking for an earlier version; the answer is the same."""
        ...

    def holds_nothing(self) -> bool:
        """Whether the store holds no object at all (no version of any key)."""
        ...

    def get(self, key: str, version_id: str | None = None, *, sha256: str | None = None) -> bytes:
        """The bytes, refused unless they match the SHA-256 recorded at write and, when given,
        ``sha256`` (the digest the index or the log holds): one hash answers both, so a
        fixity sweep or a retrieval does not hash every object twice."""
        ...

    def head(self, key: str, version_id: str | None = None) -> StoredObject: ...

    def versions(self, key: str) -> list[StoredObject]: ...

    def extend_retention(self, key: str, version_id: str, until: datetime) -> StoredObject: ...


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_digest(key: str, actual: str, recorded: str, expected: str | None) -> None:
    """Refuse bytes whose SHA-256 differs from the store's record or the caller's digest."""
    if actual != recorded:
        raise ArchiveError(f"«{key}» không khớp SHA-256 đã ghi: dữ liệu đã bị thay đổi.",
                           code="fixity_failed")
    if expected is not None and actual != expected:
        raise ArchiveError(f"«{key}» không khớp SHA-256 trong chỉ mục.", code="fixity_failed")


class LocalWormStore:
    """A write-once directory for one machine (the embedded default, demos and tests).

    Files are created exclusively and made read-only; a key already present is never
    written again. It protects against mistakes, not against a root user: production
    archives use S3 Object Lock in COMPLIANCE mode.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "objects").mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not _KEY.match(key) or ".." in key.split("/"):
            raise ArchiveError(f"Khoá lưu trữ không hợp lệ: «{key}».", code="bad_key")
        obj = self.root / "objects" / key
        return obj, obj.with_name(obj.name + ".meta.json")

    def put_locked(self, key: str, data: bytes, *, retain_until: datetime,
                   metadata: dict[str, str] | None = None,
                   legal_hold: bool = False, unwritten: bool = False) -> StoredObject:
        # legal_hold is accepted for the protocol's sake: a local WORM file is never deleted
        # by this store, so a hold adds nothing here. So is unwritten: looking for the key
        # costs one stat here, and the file is created exclusively anyway.
        obj, meta = self._paths(key)
        digest = hashlib.sha256(data).hexdigest()
        if meta.exists():
            existing = self.head(key)
            if existing.sha256 == digest:
                return existing  # the same bytes again: a redelivered task, not an overwrite
            raise ArchiveError(
                f"Đối tượng «{key}» đã được lưu và không thể ghi đè (lưu trữ chỉ ghi một lần).",
                code="overwrite_refused")
        stored = StoredObject(key=key, version_id=digest[:32], sha256=digest, size=len(data),
                              retain_until=_iso(retain_until), stored_at=_iso(datetime.now(UTC)),
                              metadata=dict(metadata or {}))
        # The object, then its metadata, each written whole, fsynced and never replaced. A
        # crash between the two leaves the object without its metadata: the next attempt
        # with the same bytes adopts it; other bytes are refused, as for any stored key.
        if (not publish_once(obj, data, mode=0o444)
                and hashlib.sha256(obj.read_bytes()).hexdigest() != digest):
            raise ArchiveError(f"Đối tượng «{key}» đã tồn tại với nội dung khác "
                               "(lưu trữ chỉ ghi một lần).", code="overwrite_refused")
        record = json.dumps(asdict(stored), ensure_ascii=False, sort_keys=True).encode("utf-8")
        if not publish_once(meta, record, mode=0o444):
            existing = self.head(key)  # another writer of this key finished first
            if existing.sha256 != digest:
                raise ArchiveError(f"Đối tượng «{key}» đã tồn tại.", code="overwrite_refused")
            return existing
        return stored

    def holds_nothing(self) -> bool:
        return not any(p.is_file() for p in (self.root / "objects").rglob("*"))

    def head(self, key: str, version_id: str | None = None) -> StoredObject:
        _, meta = self._paths(key)
        try:
            raw = json.loads(meta.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArchiveError(f"Không có đối tượng «{key}» trong kho.", code="not_found") from None
        stored = StoredObject(**raw)
        if version_id is not None and version_id != stored.version_id:
            raise ArchiveError(f"Không có phiên bản {version_id} của «{key}».", code="not_found")
        return stored

    def get(self, key: str, version_id: str | None = None, *, sha256: str | None = None) -> bytes:
        stored = self.head(key, version_id)
        obj, _ = self._paths(key)
        try:
            data = obj.read_bytes()
        except FileNotFoundError:
            raise ArchiveError(f"Tệp của «{key}» đã mất khỏi kho (sự cố toàn vẹn).",
                               code="object_missing") from None
        check_digest(key, hashlib.sha256(data).hexdigest(), stored.sha256, sha256)
        return data

    def versions(self, key: str) -> list[StoredObject]:
        try:
            return [self.head(key)]
        except ArchiveError:
            return []

    def extend_retention(self, key: str, version_id: str, until: datetime) -> StoredObject:
        """Push the recorded retain-until date later; an earlier date is refused.

        The metadata file is replaced atomically (a new read-only file renamed over the old
        one) so a crash leaves either the old date or the new one, never a torn file.
        """
        if until.tzinfo is None:
            raise ArchiveError("Ngày lưu giữ phải có múi giờ (timezone-aware).", code="bad_retention")
        stored = self.head(key, version_id)
        wanted = _iso(until)
        if wanted == stored.retain_until:
            return stored
        if wanted < stored.retain_until:  # same fixed-width ISO format: text order is time order
            raise ArchiveError(
                f"Không thể rút ngắn thời hạn lưu giữ của «{key}» từ {stored.retain_until} "
                f"xuống {wanted} (retention can only be extended).", code="retention_shortening_refused")
        _, meta = self._paths(key)
        extended = replace(stored, retain_until=wanted)
        tmp = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
        with open(tmp, "x", encoding="utf-8") as fh:
            json.dump(asdict(extended), fh, ensure_ascii=False, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, meta)
        fsync_dir(meta.parent)
        return extended
