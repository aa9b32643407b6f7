"""The app's settings, the error translation, the send-after-commit hook and ``run_worker``."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest
from celery import Celery
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator.errors import InsufficientRevinfoError
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from hsdt.domain.errors import ArchiveError, SigningRefused
from hsdt.workers.app import create_app
from hsdt.workers.cli import run_worker, worker_argv
from hsdt.workers.commit import enqueue_after_commit, pending
from hsdt.workers.errors import TransientError, translating
from hsdt.workers.settings import WorkerConfigError, WorkerSettings

TASKS = {"hsdt.render_record", "hsdt.render_class", "hsdt.sign_record", "hsdt.seal_record",
         "hsdt.ingest_record", "hsdt.fixity_sweep", "hsdt.renew_due", "hsdt.renew_record"}


# -- settings and app -----------------------------------------------------------------------

def test_no_broker_means_the_embedded_in_process_default() -> None:
    s = WorkerSettings.from_env({})
    assert s.eager and s.transport == "embedded" and s.queue == "hsdt"
    app = create_app(s)
    assert app.conf.task_always_eager is True
    assert set(app.tasks) >= TASKS


@pytest.mark.parametrize(("url", "transport"), [
    ("redis://127.0.0.1:6379/0", "redis"), ("amqp://guest:guest@127.0.0.1:5672//", "amqp"),
    ("memory://", "memory")])
def test_broker_url_chooses_the_transport(url: str, transport: str) -> None:
    s = WorkerSettings.from_env({"HSDT_BROKER_URL": url})
    assert s.transport == transport and not s.eager


def test_delivery_settings() -> None:
    app = create_app(WorkerSettings.from_env({
        "HSDT_BROKER_URL": "redis://127.0.0.1:6379/0", "HSDT_WORKER_QUEUE": "q1",
        "HSDT_BROKER_VISIBILITY_TIMEOUT": "1800", "HSDT_TASK_TIME_LIMIT": "100",
        "HSDT_TASK_SOFT_TIME_LIMIT": "90"}))
    c = app.conf
    assert (c.task_acks_late, c.task_reject_on_worker_lost, c.worker_prefetch_multiplier) == (
        True, True, 1)
    assert c.task_serializer == "json" and c.accept_content == ["json"]
    assert c.result_backend is None and c.task_ignore_result is True
    assert (c.task_soft_time_limit, c.task_time_limit) == (90, 100)
    assert c.task_default_queue == "q1"
    assert c.broker_transport_options["visibility_timeout"] == 1800
    for name in TASKS:
        assert app.tasks[name].acks_late and app.tasks[name].reject_on_worker_lost


@pytest.mark.parametrize("env", [
    {"HSDT_TASK_TIME_LIMIT": "4000"},  # a live task would be handed out a second time
    {"HSDT_TASK_RETRY_BACKOFF_MAX": "3600"},  # so would a retry waiting for its ETA
])
def test_redis_refuses_limits_longer_than_the_visibility_timeout(env: dict[str, str]) -> None:
    with pytest.raises(WorkerConfigError, match="HSDT_BROKER_VISIBILITY_TIMEOUT"):
        WorkerSettings.from_env({"HSDT_BROKER_URL": "redis://127.0.0.1:6379/0", **env})


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(WorkerConfigError, match="HSDT_BROKER_URL"):
        WorkerSettings.from_env({"HSDT_BROKER_URL": "kafka://x"}).transport  # noqa: B018
    with pytest.raises(WorkerConfigError, match="HSDT_TASK_TIME_LIMIT"):
        WorkerSettings.from_env({"HSDT_TASK_TIME_LIMIT": "soon"})


def test_beat_schedule_only_with_an_archive(tmp_path: object) -> None:
    assert create_app(WorkerSettings()).conf.beat_schedule == {}
    app = create_app(WorkerSettings.from_env({
        "HSDT_ARCHIVE_ROOT": "/srv/archive", "HSDT_PKI_DIR": "/srv/pki",
        "HSDT_FIXITY_INTERVAL": "600", "HSDT_FIXITY_LIMIT": "50"}))
    beat = app.conf.beat_schedule
    fixity, renewal = beat["hsdt-fixity-sweep"], beat["hsdt-timestamp-renewal"]
    assert fixity["task"] == "hsdt.fixity_sweep" and fixity["schedule"].total_seconds() == 600
    assert fixity["kwargs"] == {"archive_root": "/srv/archive", "pki_dir": "/srv/pki", "limit": 50}
    assert renewal["task"] == "hsdt.renew_due" and renewal["schedule"].total_seconds() == 86400
    assert renewal["kwargs"]["margin_days"] == 730
    assert {fixity["task"], renewal["task"]} <= set(app.tasks)


# -- which faults are retried -----------------------------------------------------------------

def _revinfo_error(message: str) -> Exception:
    """What seal/renew raise when the OCSP responder is down (its constructor wants a whole
    validation state; the message is all that matters here)."""
    exc = InsufficientRevinfoError.__new__(InsufficientRevinfoError)
    Exception.__init__(exc, message)
    return exc


@pytest.mark.parametrize("exc", [
    SigningRefused("no revocation info", code="cert_unverifiable"),
    SigningRefused("token busy", code="token_error"),
    ArchiveError("S3 down", code="storage_unavailable"),
    TimestampRequestError("Error while contacting timestamp service"),
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    OSError(errno.ENOSPC, "No space left on device"),
    _revinfo_error("no revocation information could be found"),
])
def test_outside_faults_become_transient(exc: Exception) -> None:
    with pytest.raises(TransientError), translating():
        raise exc


@pytest.mark.parametrize("exc", [
    SigningRefused("out of order", code="out_of_order"),
    SigningRefused("revoked", code="cert_revoked"),
    ArchiveError("invalid record", code="ingest_refused"),
    FileNotFoundError(errno.ENOENT, "no such bundle"),
    ValueError("bug"),
])
def test_refusals_and_bugs_are_not_retried(exc: Exception) -> None:
    with pytest.raises(type(exc)), translating():
        raise exc


# -- sent only after commit -------------------------------------------------------------------

@pytest.fixture
def memory_app() -> Iterator[Celery]:
    """A real in-process broker (kombu's memory transport), so 'sent' can be counted."""
    app = create_app(WorkerSettings(broker_url="memory://", queue="after-commit-test"))
    yield app
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("after-commit-test")
    app.close()


def _queued(app: Celery) -> int:
    with app.connection_for_read() as conn:
        return int(conn.default_channel.queue_declare("after-commit-test")
                   .message_count)


def test_tasks_leave_only_when_the_transaction_commits(memory_app: Celery) -> None:
    engine = create_engine("sqlite://")
    sig = memory_app.signature("hsdt.fixity_sweep", args=("/srv/archive",))
    with Session(engine) as session:
        session.execute(text("select 1"))
        enqueue_after_commit(sig, session)
        with session.begin_nested():  # a released SAVEPOINT is not the commit
            enqueue_after_commit(sig, session)
        assert pending(session) == 2 and _queued(memory_app) == 0
        session.commit()
        assert pending(session) == 0 and _queued(memory_app) == 2


def test_a_rollback_sends_nothing(memory_app: Celery) -> None:
    engine = create_engine("sqlite://")
    sig = memory_app.signature("hsdt.fixity_sweep", args=("/srv/archive",))
    with Session(engine) as session:
        session.execute(text("select 1"))
        enqueue_after_commit(sig, session)
        session.rollback()
        assert pending(session) == 0
        session.execute(text("select 1"))
        session.commit()  # a later commit does not resurrect the rolled-back task
    assert _queued(memory_app) == 0


def test_without_a_session_a_task_leaves_at_once(memory_app: Celery) -> None:
    enqueue_after_commit(memory_app.signature("hsdt.fixity_sweep", args=("/srv/archive",)))
    assert _queued(memory_app) == 1


# -- hsdt worker ------------------------------------------------------------------------------

def test_run_worker_needs_a_broker() -> None:
    with pytest.raises(WorkerConfigError, match="HSDT_BROKER_URL"):
        run_worker([], app=create_app(WorkerSettings()))


def test_worker_arguments_keep_what_the_operator_gives() -> None:
    assert worker_argv([], "hsdt")[:3] == ["worker", "--queues", "hsdt"]
    argv = worker_argv(["-c", "3", "--queues=other", "-B"], "hsdt")
    assert argv.count("--concurrency") == 0 and "-c" in argv and "--queues=other" in argv
    assert "--queues" not in argv and "-B" in argv


def test_beat_polls_phone_approvals_only_with_remote_signing() -> None:
    assert "hsdt-remote-approvals" not in create_app(WorkerSettings()).conf.beat_schedule
    app = create_app(WorkerSettings.from_env({"HSDT_REMOTE_SIGNING": "/etc/hsdt/remote.toml",
                                              "HSDT_REMOTE_POLL_INTERVAL": "2.5"}))
    poll = app.conf.beat_schedule["hsdt-remote-approvals"]
    assert poll["task"] == "hsdt.service.poll_remote_approvals" and poll["schedule"].total_seconds() == 2.5
    assert poll["task"] in app.tasks
