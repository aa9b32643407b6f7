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
  ``postgresql://…`` in production, through psycopg 3). ``hsdt serve`` migrates it to the
  newest schema at start.
- The service (``hsdt serve``, :func:`hsdt.service.config.context_from_env`):

  - ``HSDT_TRUST_ROOTS``: more trust anchors (PEM/DER files, separated by ``:``) besides
    ``trust/*.pem`` of ``HSDT_CONFIG_DIR``; the service refuses to start with none at all.
  - ``HSDT_TSA_URL``: the time-stamping service (RFC 3161) of B-T signatures and of the
    B-LTA seal (required).
  - ``HSDT_WORK_DIR``: working copies of records between signatures (default ``var/work``).
  - ``HSDT_ARCHIVE_ROOT``: the archive's index, transparency log and log key, and the
    records themselves with the local store (default ``var/archive``; also read by the
    workers' beat, see :mod:`hsdt.workers.settings`).
  - The school seal, a key on the server's HSM (optional; without it the service refuses
    to seal): ``HSDT_SEAL_SCHOOL`` (the school's code), ``HSDT_SEAL_TOKEN_LABEL``,
    ``HSDT_SEAL_KEY_LABEL`` (label of the key and of its certificate on the token),
    ``HSDT_SEAL_CHAIN`` (optional file of intermediate certificates, PEM/DER), with the
    library and PIN in ``HSDT_PKCS11_LIB`` and ``HSDT_PKCS11_PIN``.
  - ``HSDT_TEST_PKI_DIR``: **tests and demos only** — a test PKI made by ``hsdt demo``:
    its anchors, its TSA (unless ``HSDT_TSA_URL``) and its seal key on SoftHSM2.
  - ``HSDT_BROKER_URL`` set: rendering, certification and the final seal run on Celery
    workers instead of inside the request.
  - ``HSDT_REMOTE_SIGNING``: the remote-signing providers' TOML file (CSC, phone approval;
    :mod:`hsdt.signing.remote.providers`, ``docs/remote-signing.md``); secrets are in the
    environment variables it names. ``HSDT_REMOTE_POLL_INTERVAL``: seconds between the
    beat's polls of batches awaiting approval (default 5).
- ``hsdt agent`` (the teacher's PC): ``HSDT_SERVER_URL`` (the API, e.g.
  ``https://hsdt.example.edu.vn``) and ``HSDT_PKCS11_LIB`` (the token's library).
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
