"""Canonical JSON: one byte string per value, so that a digest names the data, not its layout.

Keys sorted, no insignificant whitespace, UTF-8 without escapes, decimals as the strings
pydantic writes; the same data therefore always hashes the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
