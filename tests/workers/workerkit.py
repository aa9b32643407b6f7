"""Helpers for the workers' tests: brokers, worker subprocesses, archive summaries.

See conftest.py for the fixtures built on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from hsdt.archive.audit import audit_log
from hsdt.archive.ingest import Archive
from hsdt.archive.store import LocalWormStore
from hsdt.domain.canonical import sha256_hex
from hsdt.domain.records import Record
from hsdt.signing import testpki
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.verification import Verifier
from hsdt.workers.app import create_app
from hsdt.workers.files import read_journal
from hsdt.workers.settings import WorkerSettings

REDIS_URL = os.environ.get("HSDT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("HSDT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY = str(Path(sys.executable).parent / "celery")
STUDENTS = 5
TRANSPORTS = ("redis", "amqp", "embedded")
# Redis hands an unacknowledged message out again only after the visibility timeout: short
# here so a killed worker's task comes back within the test, and the hard time limit below it
# (WorkerSettings refuses otherwise). RabbitMQ notices a dead consumer at once.
REDIS_VISIBILITY_TIMEOUT = 15
TIME_LIMITS = {"HSDT_TASK_SOFT_TIME_LIMIT": "10", "HSDT_TASK_TIME_LIMIT": "12"}


def require_redis(url: str = REDIS_URL) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        pytest.fail(f"Redis (Celery broker) is not reachable at {url}: {exc}. Start it with "
                    "`service redis-server start` (Debian package redis-server) or "
                    "`redis-server --daemonize yes`; set HSDT_TEST_REDIS_URL for another one.",
                    pytrace=False)


def require_rabbitmq(url: str = AMQP_URL) -> None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        pytest.fail(f"RabbitMQ (Celery broker) is not reachable at {url}: {exc}. Start it with "
                    "`service rabbitmq-server start` (Debian package rabbitmq-server); "
                    "set HSDT_TEST_AMQP_URL for another one.", pytrace=False)


# -- the class, its PKI ---------------------------------------------------------------------

@dataclass(frozen=True)
class ClassFixture:
    bundle_path: Path
    records: list[Record]
    pki: testpki.TestPKI


# -- brokers and workers --------------------------------------------------------------------

@dataclass
class Broker:
    """One broker, as a test uses it: a private queue (and Redis key prefix)."""

    transport: str  # "redis" | "amqp" | "embedded"
    queue: str
    url: str | None
    key_prefix: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def settings(self) -> WorkerSettings:
        env = self.env()
        return WorkerSettings.from_env(env)

    def env(self) -> dict[str, str]:
        env = {"HSDT_WORKER_QUEUE": self.queue, "HSDT_WORKER_REMOTE_CONTROL": "0",
               "HSDT_TASK_RETRY_BACKOFF": "1", "HSDT_TASK_RETRY_BACKOFF_MAX": "8", **TIME_LIMITS}
        if self.url:
            env["HSDT_BROKER_URL"] = self.url
        if self.transport == "redis":
            env.update({"HSDT_BROKER_VISIBILITY_TIMEOUT": str(REDIS_VISIBILITY_TIMEOUT),
                        "HSDT_BROKER_RESTORE_INTERVAL": "1",
                        "HSDT_BROKER_KEY_PREFIX": self.key_prefix or ""})
        env.update(self.extra_env)
        return env

    def backlog(self) -> dict[str, int]:
        """Messages still queued, and (Redis) delivered but never acknowledged."""
        if self.transport == "redis":
            import redis

            client = redis.Redis.from_url(self.url or REDIS_URL)
            return {"queued": int(client.llen(f"{self.key_prefix}{self.queue}")),
                    "unacked": int(client.hlen(f"{self.key_prefix}unacked"))}
        if self.transport == "amqp":
            with self._amqp_channel() as ch:
                _, ready, _ = ch.queue_declare(self.queue, passive=True)
                return {"queued": int(ready)}
        return {}

    @contextlib.contextmanager
    def _amqp_channel(self) -> Iterator[Any]:
        import amqp
        from kombu.utils.url import url_to_parts

        _, host, port, user, password, _, _ = url_to_parts(self.url)
        conn = amqp.Connection(f"{host}:{port or 5672}", userid=user, password=password)
        conn.connect()
        try:
            yield conn.channel()
        finally:
            conn.close()

    def purge(self) -> None:
        """Delete the queue and everything the transport kept for it."""
        if self.transport == "redis":
            import redis

            client = redis.Redis.from_url(self.url or REDIS_URL)
            keys = list(client.scan_iter(match=f"{self.key_prefix}*", count=500))
            if keys:
                client.delete(*keys)
        elif self.transport == "amqp":
            with self._amqp_channel() as ch:
                ch.queue_delete(self.queue)
                ch.exchange_delete(self.queue)


def make_broker(transport: str) -> Broker:
    queue = f"hsdt-test-{uuid.uuid4().hex[:12]}"
    if transport == "redis":
        require_redis()
        return Broker("redis", queue, REDIS_URL, key_prefix=f"{queue}:")
    if transport == "amqp":
        require_rabbitmq()
        return Broker("amqp", queue, AMQP_URL)
    return Broker("embedded", queue, None)


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pgid(self) -> int:
        return self.proc.pid  # started with start_new_session: leader of its own group

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole worker: main process and pool process at the same instant."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait(timeout=10)


class WorkerSet:
    """Worker subprocesses for one test, always killed at the end."""

    def __init__(self, broker: Broker, tmp: Path) -> None:
        self.broker = broker
        self.tmp = tmp
        self.workers: list[Worker] = []

    def start(self, n: int = 2, extra_env: dict[str, str] | None = None,
              args: tuple[str, ...] = ()) -> list[Worker]:
        env = {**os.environ, **self.broker.env(), **(extra_env or {})}
        env.pop("SOFTHSM2_CONF", None)  # each worker points SoftHSM2 at the PKI's token itself
        started = []
        for _ in range(n):
            name = f"w{len(self.workers) + 1}"
            log = self.tmp / f"{name}.log"
            cmd = [CELERY, "-A", "hsdt.workers.app", "worker", "--concurrency", "1",
                   "--queues", self.broker.queue, "--hostname", f"{name}-{self.broker.queue}@%h",
                   "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "--loglevel", "INFO", *args]
            with log.open("wb") as fh:
                proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            w = Worker(name, proc, log)
            self.workers.append(w)
            started.append(w)
        for w in started:
            self._wait_ready(w)
        return started

    def _wait_ready(self, w: Worker, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = w.log.read_text("utf-8", "replace")
            if " ready." in text:
                return
            if not w.alive():
                pytest.fail(f"worker {w.name} exited with {w.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.1)
        pytest.fail(f"worker {w.name} not ready after {timeout}s:\n"
                    f"{w.log.read_text('utf-8', 'replace')[-3000:]}")

    def by_pgid(self, pgid: int) -> Worker:
        for w in self.workers:
            if w.pgid == pgid:
                return w
        raise AssertionError(f"process group {pgid} is none of this test's workers")

    def logs(self) -> str:
        return "\n".join(f"── {w.name} ──\n{w.log.read_text('utf-8', 'replace')[-4000:]}"
                         for w in self.workers)

    def stop(self) -> None:
        for w in self.workers:
            if w.alive():
                w.kill()


@dataclass
class BrokerRun:
    broker: Broker
    app: Celery
    workers: WorkerSet


@contextlib.contextmanager
def running(transport: str, tmp: Path) -> Iterator[BrokerRun]:
    """A private queue on ``transport`` ("redis" | "amqp" | "embedded"), an app sending to it
    and a :class:`WorkerSet`; afterwards the workers are killed and the queue deleted."""
    broker = make_broker(transport)
    app = create_app(broker.settings(), main=f"hsdt-test-{broker.queue}")
    workers = WorkerSet(broker, tmp)
    try:
        yield BrokerRun(broker, app, workers)
    finally:
        workers.stop()
        app.close()
        broker.purge()


def read_marker(path: Path, timeout: float) -> dict[str, Any]:
    """Wait for the pause marker a worker writes at its checkpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text()))
        time.sleep(0.05)
    raise AssertionError(f"no worker reached the pause point within {timeout}s")


# -- what an archive records ----------------------------------------------------------------

def open_archive(root: Path, pki: testpki.TestPKI) -> Archive:
    verifier = Verifier(pki.trust_roots(), CertificateBindings(pki.bindings()), online=False)
    return Archive(LocalWormStore(root), root, verifier)


def stored_objects(root: Path, prefix: str) -> list[Path]:
    return sorted(p for p in (root / "objects" / prefix).rglob("*") if p.is_file()
                  and not p.name.endswith(".meta.json"))


def archive_summary(root: Path, pki: testpki.TestPKI, work_dir: Path) -> dict[str, Any]:
    """What a run leaves behind that does not depend on the clock.

    A sealed record's bytes (hence its SHA-256) differ between runs: every signature carries
    its timestamp and the DSS its OCSP responses. What must be equal is what the archive
    records about each record — which records, which revision, each signature's field,
    assignee and certificate, valid and trusted, sealed with one archive timestamp — and
    the counts (index rows, log events, stored objects), the audit's verdict, and the rendered
    PDFs, which are deterministic and so compared by SHA-256.
    """
    archive = open_archive(root, pki)
    try:
        records: dict[str, Any] = {}
        for e in archive.entries():
            report = archive.verifier.verify(archive.get(e))
            records[e.record_id] = {
                "student_code": e.student_code, "school_code": e.school_code,
                "school_year": e.school_year, "kind": e.kind, "revision": e.revision,
                "superseded_by": e.superseded_by, "renewed_from": e.renewed_from,
                "verdict": report.verdict, "sealed": report.sealed,
                "plan_complete": report.plan_complete,
                "signatures": [(s.field, s.assignee, s.cert_sha256, s.valid, s.trusted)
                               for s in report.signatures],
                "archive_timestamps": len(report.archive_timestamps),
            }
        findings = [f.code for f in audit_log(archive)]
        return {
            "records": records,
            "index_rows": len(archive.entries()),
            "log_events": archive.log.size,
            "record_objects": len(stored_objects(root, "records")),
            "report_objects": len(stored_objects(root, "reports")),
            "audit_findings": findings,
            "rendered_sha256": sorted(sha256_hex(p.read_bytes())
                                      for p in (work_dir / "rendered").glob("*.pdf")),
        }
    finally:
        archive.close()
        archive.log.close()


def work_counts(work_dir: Path) -> Counter[tuple[str, str]]:
    """(task, work|skip) → how many executions the journal shows."""
    return Counter((line["task"], line["did"]) for line in read_journal(work_dir))
