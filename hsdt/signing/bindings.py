"""Which certificate belongs to whom.

Điều 10 of the regulation: nobody signs for another. A certificate is accepted for a field
only if the registry binds its SHA-256 fingerprint to the person (or, for the seal, the
school) that the plan assigns to the field. The registry is data the school administrator
keeps; here it is a JSON file, and the service issue moves it into the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hsdt.domain.errors import HsdtError


@dataclass(frozen=True)
class CertificateBindings:
    by_fingerprint: Mapping[str, str]

    @classmethod
    def load(cls, path: Path) -> CertificateBindings:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HsdtError(f"Không tìm thấy sổ đăng ký chứng thư {path}.",
                            code="bindings_missing") from None
        if not isinstance(raw, dict):
            raise HsdtError(f"Sổ đăng ký chứng thư {path} sai định dạng.", code="bindings_invalid")
        return cls({str(k).lower(): str(v) for k, v in raw.items()})

    def owner(self, fingerprint: str) -> str | None:
        return self.by_fingerprint.get(fingerprint.lower())
