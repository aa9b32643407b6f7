"""Where configuration lives. Every environment variable is named HSDT_… and documented here.

- ``HSDT_CONFIG_DIR``: the folder holding ``default.toml``, ``plans/`` and ``trust/``
  (default: the ``config/`` folder of this checkout).
- ``HSDT_ARCHIVE_BACKEND``: ``local`` (the write-once directory, one machine) or ``s3``
  (S3 Object Lock, COMPLIANCE mode). With ``s3`` the bucket is read from:
  ``HSDT_S3_ENDPOINT`` (empty: AWS), ``HSDT_S3_REGION``, ``HSDT_S3_BUCKET``,
  ``HSDT_S3_ACCESS_KEY``, ``HSDT_S3_SECRET_KEY`` (empty: boto3's usual credential chain),
  ``HSDT_S3_ADDRESSING_STYLE`` (auto | path | virtual), ``HSDT_S3_PERMANENT_YEARS`` (how far a
  "permanent" retain-until is set; default 100, renewed by the service) and
  ``HSDT_S3_RETAIN_UNTIL_CEILING`` (the latest date the provider stores correctly — Ceph
  radosgw before 18.2.1 wraps dates after 2106-02-07 — or ``none``).
- ``HSDT_VERIFY_BASE_URL``: the public verification site printed in each record's QR code
  (``{base}/v/{record_id}``). It is part of the rendered record: another base, other bytes.
- ``HSDT_PKCS11_LIB``, ``HSDT_PKCS11_PIN``, ``HSDT_P12_PASSPHRASE``: keys for ``hsdt sign``.
- ``HSDT_BROKER_URL`` and the other worker settings: documented in
  :mod:`hsdt.workers.settings` (no broker: tasks run in the calling process).
- ``HSDT_DATABASE_URL``: the service's database (default ``sqlite:///var/hsdt.sqlite3``;
  ``postgresql://…`` in production, through psycopg 3).
"""

from __future__ import annotations

import os
from pathlib import Path

from hsdt.domain.plans import PlanSpec, load_plan

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
FONTS_DIR = TEMPLATES_DIR / "fonts"


def config_dir() -> Path:
    env = os.environ.get("HSDT_CONFIG_DIR")
    return Path(env) if env else PACKAGE_DIR.parent / "config"


def plan_for(kind: str) -> PlanSpec:
    return load_plan(config_dir() / "plans" / f"{kind}.toml")


def archive_backend() -> str:
    backend = os.environ.get("HSDT_ARCHIVE_BACKEND", "local")
    if backend not in ("local", "s3"):
        from hsdt.domain.errors import HsdtError

        raise HsdtError(f"HSDT_ARCHIVE_BACKEND phải là local hoặc s3 (đang là «{backend}»).",
                        code="bad_config")
    return backend
