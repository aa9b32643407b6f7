"""The workers' settings: one typed object, read from ``HSDT_…`` environment variables.

Why a separate object: the Celery app is configured at import time in every process that
loads it (the worker, beat, the API that sends tasks, ``hsdt demo``), and all of them must
agree on the broker, the queue and the limits. Reading the environment in one place, once,
makes that agreement visible and testable (tests build their own settings and app).

Variables (all optional):

- ``HSDT_BROKER_URL``: ``redis://host:6379/0`` or ``amqp://user:pass@host:5672//``. Unset
  or empty: the **embedded default** — no broker, every task runs in the calling process
  (Celery's eager mode), so ``hsdt demo`` needs no server. ``memory://`` is accepted too
  (an in-process queue, for tests of the sending side).
- ``HSDT_WORKER_QUEUE``: the queue tasks are sent to and workers consume (default ``hsdt``).
- ``HSDT_BROKER_VISIBILITY_TIMEOUT``: seconds (Redis only, default 3600). Redis has no
  consumer-death signal: a message fetched but not acknowledged is handed out again once
  this long has passed. It must exceed the longest task *and* the longest retry delay, or
  a live task is delivered a second time (harmless — tasks are idempotent — but wasted).
  The settings refuse a time limit or backoff that does not fit under it.
- ``HSDT_BROKER_RESTORE_INTERVAL``: seconds between Redis sweeps for such messages
  (default 10; kombu scans every sweep).
- ``HSDT_BROKER_KEY_PREFIX``: a prefix for every Redis key the transport writes (isolates
  tenants or test runs sharing one Redis).
- ``HSDT_TASK_SOFT_TIME_LIMIT`` / ``HSDT_TASK_TIME_LIMIT``: seconds (default 300 / 360). The
  soft limit raises inside the task (retried as a transient fault); the hard limit kills the
  pool process.
- ``HSDT_TASK_MAX_RETRIES`` (default 6), ``HSDT_TASK_RETRY_BACKOFF`` (first delay, seconds,
  default 2), ``HSDT_TASK_RETRY_BACKOFF_MAX`` (seconds, default 600): exponential backoff
  with full jitter for transient faults (TSA/OCSP unreachable, storage errors).
- ``HSDT_WORKER_REMOTE_CONTROL``: ``0`` disables Celery's remote-control channel (``celery
  inspect``); tests turn it off so parallel runs on one broker do not see each other.
- Beat (the archive's scheduled jobs; no schedule unless ``HSDT_ARCHIVE_ROOT`` is set):
  ``HSDT_ARCHIVE_ROOT`` (the archive directory: index, log, local store),
  ``HSDT_PKI_DIR`` (trust anchors and certificate bindings: the test PKI of the embedded
  default), ``HSDT_FIXITY_INTERVAL`` (seconds, default 3600), ``HSDT_FIXITY_LIMIT`` (objects
  per sweep, default 500), ``HSDT_RENEWAL_INTERVAL`` (seconds, default 86400),
  ``HSDT_RENEWAL_MARGIN_DAYS`` (renew when the last archive timestamp's TSA certificate
  expires within this many days, default 730).
- ``HSDT_WORKERS_TEST_PAUSE`` / ``HSDT_WORKERS_TEST_PAUSE_FILE``: **tests only** — see
  :func:`hsdt.workers.tasks.checkpoint`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hsdt.domain.errors import HsdtError

EMBEDDED = "embedded"


class WorkerConfigError(HsdtError):
    """The workers' configuration cannot work as given; the message says which variable."""

    code = "bad_config"


@dataclass(frozen=True)
class WorkerSettings:
    broker_url: str | None = None
    queue: str = "hsdt"
    visibility_timeout: int = 3600
    restore_interval: int = 10
    key_prefix: str | None = None
    soft_time_limit: int = 300
    time_limit: int = 360
    max_retries: int = 6
    retry_backoff: int = 2
    retry_backoff_max: int = 600
    remote_control: bool = True
    archive_root: Path | None = None
    pki_dir: Path | None = None
    fixity_interval: float = 3600.0
    fixity_limit: int = 500
    renewal_interval: float = 86400.0
    renewal_margin_days: int = 730
    remote_signing: Path | None = None
    """``HSDT_REMOTE_SIGNING``: with providers configured, the beat polls batches waiting for
    approval on teachers' phones every ``remote_poll_interval`` seconds."""
    remote_poll_interval: float = 5.0

    def __post_init__(self) -> None:
        if not self.queue or any(c.isspace() for c in self.queue):
            raise WorkerConfigError(f"HSDT_WORKER_QUEUE không hợp lệ: «{self.queue}».")
        if self.soft_time_limit >= self.time_limit:
            raise WorkerConfigError("HSDT_TASK_SOFT_TIME_LIMIT phải nhỏ hơn HSDT_TASK_TIME_LIMIT.")
        if self.transport == "redis":
            # A task still running, or a retry still waiting for its ETA, when the visibility
            # timeout passes is handed to a second worker: keep both well inside it.
            if self.time_limit >= self.visibility_timeout:
                raise WorkerConfigError(
                    f"HSDT_TASK_TIME_LIMIT ({self.time_limit}s) phải nhỏ hơn "
                    f"HSDT_BROKER_VISIBILITY_TIMEOUT ({self.visibility_timeout}s) với Redis.")
            if self.retry_backoff_max >= self.visibility_timeout:
                raise WorkerConfigError(
                    f"HSDT_TASK_RETRY_BACKOFF_MAX ({self.retry_backoff_max}s) phải nhỏ hơn "
                    f"HSDT_BROKER_VISIBILITY_TIMEOUT ({self.visibility_timeout}s) với Redis.")

    @property
    def transport(self) -> str:
        """``embedded``, ``redis``, ``amqp`` or ``memory``."""
        if not self.broker_url:
            return EMBEDDED
        scheme = self.broker_url.split("://", 1)[0].lower()
        if scheme in ("redis", "rediss"):
            return "redis"
        if scheme in ("amqp", "amqps", "pyamqp"):
            return "amqp"
        if scheme == "memory":
            return "memory"
        raise WorkerConfigError(f"HSDT_BROKER_URL phải là redis://…, amqp://… hoặc để trống "
                                f"(đang là «{self.broker_url.split('://', 1)[0]}://…»).")

    @property
    def eager(self) -> bool:
        """The embedded default: no broker, tasks run where they are sent."""
        return self.transport == EMBEDDED

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if environ is None else environ

        def num(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return float(raw)
            except ValueError:
                raise WorkerConfigError(f"{name} phải là một số (đang là «{raw}»).") from None

        def path(name: str) -> Path | None:
            raw = env.get(name, "").strip()
            return Path(raw) if raw else None

        return cls(
            broker_url=env.get("HSDT_BROKER_URL", "").strip() or None,
            queue=env.get("HSDT_WORKER_QUEUE", "").strip() or "hsdt",
            visibility_timeout=int(num("HSDT_BROKER_VISIBILITY_TIMEOUT", 3600)),
            restore_interval=int(num("HSDT_BROKER_RESTORE_INTERVAL", 10)),
            key_prefix=env.get("HSDT_BROKER_KEY_PREFIX", "").strip() or None,
            soft_time_limit=int(num("HSDT_TASK_SOFT_TIME_LIMIT", 300)),
            time_limit=int(num("HSDT_TASK_TIME_LIMIT", 360)),
            max_retries=int(num("HSDT_TASK_MAX_RETRIES", 6)),
            retry_backoff=int(num("HSDT_TASK_RETRY_BACKOFF", 2)),
            retry_backoff_max=int(num("HSDT_TASK_RETRY_BACKOFF_MAX", 600)),
            remote_control=env.get("HSDT_WORKER_REMOTE_CONTROL", "1").strip() not in ("0", "false",
                                                                                   "no"),
            archive_root=path("HSDT_ARCHIVE_ROOT"),
            pki_dir=path("HSDT_PKI_DIR"),
            fixity_interval=num("HSDT_FIXITY_INTERVAL", 3600.0),
            fixity_limit=int(num("HSDT_FIXITY_LIMIT", 500)),
            renewal_interval=num("HSDT_RENEWAL_INTERVAL", 86400.0),
            renewal_margin_days=int(num("HSDT_RENEWAL_MARGIN_DAYS", 730)),
            remote_signing=path("HSDT_REMOTE_SIGNING"),
            remote_poll_interval=num("HSDT_REMOTE_POLL_INTERVAL", 5.0),
        )


def settings_of(app: object) -> WorkerSettings:
    """The settings an app was built with (:func:`hsdt.workers.app.create_app` attaches them)."""
    found = getattr(app, "hsdt_settings", None)
    return found if isinstance(found, WorkerSettings) else WorkerSettings.from_env()
