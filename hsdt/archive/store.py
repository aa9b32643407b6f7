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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from hsdt.domain.errors import ArchiveError

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
    """What every archive backend offers. There is deliberately no delete."""

    def put_locked(self, key: str, data: bytes, *, retain_until: datetime,
                   metadata: dict[str, str] | None = None) -> StoredObject: ...

    def get(self, key: str, version_id: str | None = None) -> bytes: ...

    def head(self, key: str, version_id: str | None = None) -> StoredObject: ...

    def versions(self, key: str) -> list[StoredObject]: ...


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
                   metadata: dict[str, str] | None = None) -> StoredObject:
        obj, meta = self._paths(key)
        digest = hashlib.sha256(data).hexdigest()
        if meta.exists():
            existing = self.head(key)
            if existing.sha256 == digest:
                return existing  # the same bytes again: a redelivered task, not an overwrite
            raise ArchiveError(
                f"Đối tượng «{key}» đã được lưu và không thể ghi đè (lưu trữ chỉ ghi một lần).",
                code="overwrite_refused")
        obj.parent.mkdir(parents=True, exist_ok=True)
        stored = StoredObject(key=key, version_id=digest[:32], sha256=digest, size=len(data),
                              retain_until=_iso(retain_until), stored_at=_iso(datetime.now(UTC)),
                              metadata=dict(metadata or {}))
        tmp = obj.with_name(f".{obj.name}.{os.getpid()}.tmp")
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, obj)  # fails if the key appeared meanwhile: never replace
        except FileExistsError:
            raise ArchiveError(f"Đối tượng «{key}» đã tồn tại.", code="overwrite_refused") from None
        finally:
            tmp.unlink()
        os.chmod(obj, 0o444)
        with open(meta, "x", encoding="utf-8") as fh:
            json.dump(asdict(stored), fh, ensure_ascii=False, sort_keys=True)
        os.chmod(meta, 0o444)
        return stored

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

    def get(self, key: str, version_id: str | None = None) -> bytes:
        stored = self.head(key, version_id)
        obj, _ = self._paths(key)
        try:
            data = obj.read_bytes()
        except FileNotFoundError:
            raise ArchiveError(f"Tệp của «{key}» đã mất khỏi kho (sự cố toàn vẹn).",
                               code="fixity_failed") from None
        if hashlib.sha256(data).hexdigest() != stored.sha256:
            raise ArchiveError(f"«{key}» không khớp SHA-256 đã ghi: dữ liệu đã bị thay đổi.",
                               code="fixity_failed")
        return data

    def versions(self, key: str) -> list[StoredObject]:
        try:
            return [self.head(key)]
        except ArchiveError:
            return []
