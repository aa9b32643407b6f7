"""``hsdt worker``: start a Celery worker for the app (the lead wires the Typer command).

Defaults that fit these tasks: ``--concurrency`` = the number of CPUs (signing is CPU-bound
and each pool process keeps its own keys and sessions open), the queue from
``HSDT_WORKER_QUEUE``, ``-O fair`` (a long task never has a short one queued behind it in
the same process). Any Celery worker option may be given and wins over these defaults.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hsdt.workers.settings import WorkerConfigError, settings_of

if TYPE_CHECKING:
    from celery import Celery


def worker_argv(argv: Sequence[str], queue: str) -> list[str]:
    """The full ``celery worker`` argument list: our defaults, then the caller's options."""
    args = list(argv)
    given = {a.split("=", 1)[0] for a in args if a.startswith("-")}
    defaults: list[str] = []
    if not given & {"-Q", "--queues"}:
        defaults += ["--queues", queue]
    if not given & {"-c", "--concurrency"}:
        defaults += ["--concurrency", str(os.cpu_count() or 1)]
    if not given & {"-O"}:
        defaults += ["-O", "fair"]
    if not given & {"-l", "--loglevel"}:
        defaults += ["--loglevel", "INFO"]
    return ["worker", *defaults, *args]


def run_worker(argv: Sequence[str] = (), *, app: Celery | None = None) -> None:
    """Run a worker in this process until it is stopped (SIGTERM: warm shutdown)."""
    if app is None:
        from hsdt.workers.app import app
    settings = settings_of(app)
    if settings.eager:
        raise WorkerConfigError(
            "Chưa đặt HSDT_BROKER_URL: ở chế độ mặc định (không máy chủ) các tác vụ chạy ngay "
            "trong tiến trình gửi, không cần worker. Đặt HSDT_BROKER_URL=redis://127.0.0.1:6379/0 "
            "hoặc amqp://guest:guest@127.0.0.1:5672// để chạy worker.")
    app.worker_main(argv=worker_argv(argv, settings.queue))
