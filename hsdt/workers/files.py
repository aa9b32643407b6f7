"""The workers' files: content-addressed outputs, cross-process locks, a journal, statuses.

Why files: a task's result must survive the worker that produced it and be found by the
next delivery of the same message, on any worker. Naming each output by the SHA-256 of the
task's *input* makes "has this work been done?" a single ``stat``; creating it with
``link(2)`` from a fully written, fsynced temporary file makes it appear whole or not at
all; and a ``flock`` held while producing it makes two simultaneous deliveries do the work
once (the second waits, then finds the output). Locks die with their process, so a worker
killed while holding one blocks nobody.

These locks assume the workers share one local file system (one machine, or one host per
work directory). Several hosts need a lock service instead: the database's row or advisory
locks once the DB layer exists (``SELECT … FOR UPDATE`` / ``pg_advisory_xact_lock``), keyed
the same way.

Layout of a work directory::

    rendered/<record data SHA-256>.pdf   render output (deterministic bytes)
    signed/<SHA-256 of its input>.pdf    after every server-held signature
    sealed/<SHA-256 of its input>.pdf    after the B-LTA seal
    status/<record id>.json              where each record of a run ended
    journal.jsonl                        one line per task execution: work or skip
    locks/                               flock targets
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hsdt.durable import publish_once

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if need be) across processes."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def produce_once(out: Path, lock_dir: Path, produce: Callable[[], bytes]) -> bool:
    """Make ``out`` with ``produce()`` unless it exists. True if this call did the work.

    The fast path (already there) takes no lock; otherwise the output's lock is taken and
    the check repeated, so concurrent deliveries of one message produce it once.
    """
    if out.exists():
        return False
    with exclusive(lock_dir / f"{out.parent.name}-{out.name}.lock"):
        if out.exists():
            return False
        return publish_once(out, produce())


def safe_name(name: str) -> str:
    """A record id or digest usable as a file name (they are; a crafted one is refused)."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"unsafe file name {name!r}")
    return name


def write_json_atomic(path: Path, value: Any) -> None:
    """Replace ``path`` with ``value`` as JSON: readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def write_status(work_dir: Path, record_id: str, state: str, **details: Any) -> None:
    """Where a record of a run ended: ``archived``, ``failed`` or ``awaiting_signatures``."""
    write_json_atomic(work_dir / "status" / f"{safe_name(record_id)}.json",
                      {"record_id": record_id, "state": state, "at": now_iso(), **details})


def read_statuses(work_dir: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    folder = work_dir / "status"
    if not folder.is_dir():
        return out
    for p in folder.glob("*.json"):
        try:
            value = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # replaced while we read it: the next poll sees the new one
        out[str(value.get("record_id", p.stem))] = value
    return out


def journal(work_dir: Path, task: str, did: str, **details: Any) -> None:
    """Append one line saying what a task execution did (``work`` or ``skip``), and where.

    One ``write`` of a short line to an ``O_APPEND`` file: lines from concurrent workers
    never interleave. The journal is how an operator (and the tests) see that a message
    delivered twice did its work once.
    """
    line = json.dumps({"at": now_iso(), "task": task, "did": did, "pid": os.getpid(),
                       "host": socket.gethostname(), **details},
                      ensure_ascii=False, sort_keys=True) + "\n"
    work_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(work_dir / "journal.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def read_journal(work_dir: Path) -> list[dict[str, Any]]:
    path = work_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
