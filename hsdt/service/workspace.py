"""Working copies of records between signatures, kept by content (SHA-256).

A record changes with every signature; each version is a new file named by its digest and
written once, so a crash mid-write never leaves a half record under a name the database
points to, and two workers producing the same bytes write the same file. The archive, not
this folder, is the record of last resort: these are the drafts on their way to it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hsdt.durable import publish_once
from hsdt.service.errors import ServiceError


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.pdf"

    def put(self, pdf: bytes) -> str:
        digest = hashlib.sha256(pdf).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            publish_once(path, pdf)
        return digest

    def get(self, sha256: str) -> bytes:
        try:
            data = self._path(sha256).read_bytes()
        except FileNotFoundError:
            raise ServiceError(f"Không tìm thấy bản làm việc {sha256[:16]}… của hồ sơ.",
                               code="workspace_missing") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ServiceError(f"Bản làm việc {sha256[:16]}… đã bị thay đổi trên đĩa.",
                               code="workspace_tampered")
        return data
