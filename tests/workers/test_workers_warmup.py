"""A worker's pool process pays its one-time costs as it starts, not in its first record.

The fonts, a render and — when the worker is told its PKI (``HSDT_PKI_DIR``) — every key the
server holds are opened before the worker reports ready; a key that cannot be opened is
logged and the worker starts anyway (the task that needs it fails with the reason).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from workerkit import BrokerRun, ClassFixture

from hsdt.workers.pipeline import process_class

_READY = re.compile(r"đã khởi động sẵn: phông chữ, mẫu hồ sơ, (\d+) khoá ký")


def _warm_up_line(log: Path, timeout: float = 30.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _READY.search(log.read_text("utf-8", "replace"))
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no warm-up line in the worker's log:\n{log.read_text('utf-8')[-3000:]}")


def test_the_pool_process_opens_the_servers_keys_before_work(
        school_class: ClassFixture, broker_run: Callable[[str], BrokerRun], tmp_path: Path) -> None:
    run = broker_run("redis")
    pki = school_class.pki
    [worker] = run.workers.start(1, extra_env={"HSDT_PKI_DIR": str(pki.workdir)})
    held = [i for i in pki.identities() if i.kind != "negative"]
    assert int(_warm_up_line(worker.log).group(1)) == len(held) > 2  # seal, principal, teachers
    assert "Không mở trước được" not in worker.log.read_text("utf-8")
    assert "chưa kiểm tra trước được" not in worker.log.read_text("utf-8")  # trust asked ahead
    job = process_class(school_class.bundle_path, tmp_path / "work", tmp_path / "archive",
                        pki.workdir, app=run.app)
    assert job.wait(timeout=120).complete


def test_a_key_that_will_not_open_does_not_stop_the_worker(
        school_class: ClassFixture, broker_run: Callable[[str], BrokerRun], tmp_path: Path) -> None:
    run = broker_run("redis")
    missing = tmp_path / "no-such-pki"
    [worker] = run.workers.start(1, extra_env={"HSDT_PKI_DIR": str(missing)})
    assert int(_warm_up_line(worker.log).group(1)) == 0
    text = worker.log.read_text("utf-8")
    assert f"Không mở trước được khoá ký trong {missing}" in text
    assert worker.alive()
    # It works all the same for a job that names a PKI it can open.
    job = process_class(school_class.bundle_path, tmp_path / "work", tmp_path / "archive",
                        school_class.pki.workdir, app=run.app)
    assert job.wait(timeout=120).complete


def test_a_warm_up_that_cannot_render_logs_and_returns(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    import hsdt.workflow
    from hsdt.workers import context

    def broken(record: object) -> bytes:
        raise OSError("libpango missing (test)")

    monkeypatch.setattr(hsdt.workflow, "render", broken)
    frozen: list[bool] = []  # not this test process's heap: only that the warm-up asks
    monkeypatch.setattr(context, "freeze_long_lived", lambda: frozen.append(True))
    with caplog.at_level(logging.INFO, logger="hsdt.workers.context"):
        context.warm_up(None)  # does not raise: the pool process starts
    assert frozen == [True]  # what the process keeps is left out of later collections
    assert "Không kết xuất thử được hồ sơ mẫu" in caplog.text
    assert "libpango missing (test)" in caplog.text
    assert "đã khởi động sẵn" in caplog.text
