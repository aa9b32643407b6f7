"""The one Celery app: configured from :class:`WorkerSettings`, the same in every process.

``celery -A hsdt.workers.app worker`` and ``hsdt worker`` load :data:`app`, built from the
environment. Tests and tools that need another broker or queue call :func:`create_app`; the
tasks are ``shared_task``\\ s, so every app gets all of them.

Delivery guarantees, and why each setting is what it is:

- ``task_acks_late``: a message is acknowledged only after its task returned. A worker that
  dies in the middle leaves the message unacknowledged, and the broker hands it out again
  (RabbitMQ as soon as the connection drops; Redis once the visibility timeout passes).
  At-least-once delivery is therefore the contract, and every task is idempotent.
- ``task_reject_on_worker_lost``: when the *pool process* running a task is killed (OOM
  killer, SIGKILL, segfault in a native library) the worker requeues the message instead of
  acknowledging it as failed — without it a killed task would be lost. (A task that kills
  its process every time would loop; the time limits and the idempotent outputs keep such a
  loop visible in the logs rather than harmful.)
- ``worker_prefetch_multiplier = 1``: each worker process reserves one message at a time,
  so a long signing task never holds back records another worker could take, and a dying
  worker takes at most one message down with it.
- ``worker_cancel_long_running_tasks_on_connection_loss``: with late acks a message whose
  worker lost its broker connection is redelivered elsewhere; cancelling the local copy
  keeps the duplicate work short.
- JSON only: messages carry paths, digests and ids, never pickles.
- No result backend: tasks write their outcome where it belongs — the archive, the
  content-addressed work files, and one status file per record (see :mod:`.files`).
- Time limits: the soft one raises inside the task (retried), the hard one kills the pool
  process.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery, signals

from hsdt.workers.settings import WorkerSettings

TASK_MODULES = ("hsdt.workers.tasks", "hsdt.service.tasks")


def create_app(settings: WorkerSettings | None = None, *, main: str = "hsdt",
               set_as_current: bool = False) -> Celery:
    """A Celery app for ``settings`` (default: the environment).

    Only the module's own :data:`app` becomes Celery's *current* app; apps made for tests
    or tools stay out of the way (they address tasks by name through their own app).
    """
    settings = settings or WorkerSettings.from_env()
    app = Celery(main, set_as_current=set_as_current)
    app.conf.update(_config(settings))
    app.hsdt_settings = settings  # type: ignore[attr-defined]
    # Import the task module now: shared tasks attach to every app finalized afterwards.
    import hsdt.service.tasks
    import hsdt.workers.tasks  # noqa: F401

    return app


def _config(s: WorkerSettings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "broker_url": s.broker_url or "memory://",
        "task_always_eager": s.eager,
        "task_eager_propagates": False,
        "task_store_eager_result": False,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # A pool process warms up before it reports ready (fonts, a render, the server's
        # keys: about a second, more on a loaded machine); Celery's default allows 4 s.
        "worker_proc_alive_timeout": 60.0,
        "broker_connection_retry_on_startup": True,
        "task_soft_time_limit": s.soft_time_limit,
        "task_time_limit": s.time_limit,
        "task_default_queue": s.queue,
        "task_default_exchange": s.queue,
        "task_default_routing_key": s.queue,
        "task_create_missing_queues": True,
        "worker_enable_remote_control": s.remote_control,
        "worker_send_task_events": False,
        "enable_utc": True,
        "timezone": "Asia/Ho_Chi_Minh",
        "beat_schedule": beat_schedule(s),
    }
    if s.transport == "redis":
        options: dict[str, Any] = {
            "visibility_timeout": s.visibility_timeout,
            "unacked_restore_interval": s.restore_interval,
            "unacked_restore_throttle": 1,
        }
        if s.key_prefix:
            options["global_keyprefix"] = s.key_prefix
        conf["broker_transport_options"] = options
    if s.transport == "amqp":
        # Durable queue and persistent messages: a broker restart loses nothing queued.
        conf["task_default_delivery_mode"] = "persistent"
        conf["broker_transport_options"] = {"confirm_publish": True}
    return conf


def beat_schedule(s: WorkerSettings) -> dict[str, dict[str, Any]]:
    """The scheduled jobs: the archive's (when its place is configured) and the poll of
    batches waiting for approval on a phone (when remote signing is configured).

    The fixity sweep is bounded (``limit``) and resumes from a cursor the archive keeps, so
    a sweep interrupted or overlapping with the next one re-checks at most one batch; the
    renewal job only finds what is due and sends one idempotent task per record.
    """
    schedule: dict[str, dict[str, Any]] = {}
    if s.remote_signing is not None:
        schedule["hsdt-remote-approvals"] = {
            "task": "hsdt.service.poll_remote_approvals",
            "schedule": timedelta(seconds=s.remote_poll_interval),
            "options": {"expires": s.remote_poll_interval},
        }
    if s.archive_root is None:
        return schedule
    common = {"archive_root": str(s.archive_root),
              "pki_dir": str(s.pki_dir) if s.pki_dir else None}
    return {
        **schedule,
        "hsdt-fixity-sweep": {
            "task": "hsdt.fixity_sweep",
            "schedule": timedelta(seconds=s.fixity_interval),
            "kwargs": {**common, "limit": s.fixity_limit},
            "options": {"expires": s.fixity_interval},
        },
        "hsdt-timestamp-renewal": {
            "task": "hsdt.renew_due",
            "schedule": timedelta(seconds=s.renewal_interval),
            "kwargs": {**common, "margin_days": s.renewal_margin_days},
            "options": {"expires": s.renewal_interval},
        },
    }


# Libraries that log every font subset and every OCSP fetch at INFO: one signature would
# fill a screen of a worker's log. Their warnings and errors still show.
_CHATTY_LOGGERS = ("fontTools", "pyhanko", "pyhanko_certvalidator", "weasyprint")


@signals.after_setup_logger.connect
def _quiet_chatty_libraries(**_: Any) -> None:
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@signals.worker_process_init.connect
def _warm_up(**_: Any) -> None:
    """Pay a pool process's one-time costs as it starts (see :func:`.context.warm_up`)."""
    from celery import current_app

    from hsdt.workers import context

    settings = getattr(current_app, "hsdt_settings", None) or WorkerSettings.from_env()
    context.warm_up(settings.pki_dir)


@signals.worker_process_shutdown.connect
def _close_sessions(**_: Any) -> None:
    """Close keys, HSM sessions and HTTP sessions when a pool process ends."""
    from hsdt.workers import context

    context.reset()


app = create_app(set_as_current=True)
