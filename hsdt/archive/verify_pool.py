"""Verifying a batch on several processes: the archive's verifier, one copy per core.

Verification is nearly all of an ingest (a few hundred milliseconds of CPU for a sealed học
bạ page, against tens to store, log and index it), and it is pure Python: threads would take
turns on one core. A batch — a class, a school's year — is therefore verified by a pool of
processes, each holding its own :class:`~hsdt.signing.verification.Verifier` built from the
same trust anchors and certificate registry, while the archive's own process stores, logs
and indexes in record order exactly as for a serial batch.

The processes are started (``spawn``: nothing of the parent — its SQLite connection, its
boto3 threads — is inherited) when the pool is made, and the pool is handed over only once
every one of them has imported what it needs and built its verifier, so that a batch never
waits for an interpreter to start (nor shares the cores with one starting).

Each record is judged at the time it is handed to the pool, by the parent's clock: a frozen
clock in a test (or a time-travel check) holds in the processes too.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import datetime
from multiprocessing.queues import SimpleQueue

from asn1crypto import x509

from hsdt.domain.errors import ArchiveError
from hsdt.heap import freeze_long_lived
from hsdt.signing.bindings import CertificateBindings
from hsdt.signing.verification import VerificationReport, Verifier

_verifier: Verifier | None = None  # in each pool process: its copy of the archive's verifier
_frozen = False  # in each pool process: whether its long-lived objects are frozen
_started: threading.Barrier | None = None  # in each pool process: where all of them meet once

START_TIMEOUT = 300.0
"""Seconds for every process of a new pool to be up (an interpreter and the verifier's
imports: a second or two; minutes on a machine that is swapping)."""


def _start(roots_der: list[bytes], bindings: dict[str, str] | None, online: bool,
           started: threading.Barrier, failures: SimpleQueue[str]) -> None:
    global _verifier, _started
    _started = started
    try:
        roots = [x509.Certificate.load(der) for der in roots_der]
        _verifier = Verifier(roots, CertificateBindings(bindings) if bindings is not None
                             else None, online=online)
    except BaseException as exc:
        # The pool only learns that a process died; the parent reads why from here. The
        # others stop waiting for this one at once instead of for START_TIMEOUT.
        failures.put(f"{type(exc).__name__}: {exc}")
        started.abort()
        raise
    # Everything imported so far lives as long as the process: out of every collection from
    # now on, before the batch waits for one (the first record would otherwise pay for a
    # full collection of ~120 000 objects, half again its own verification).
    freeze_long_lived()
    # A verification frees what it parsed by reference counting (RecordState.release): the
    # automatic collections it triggers, one per 700 new objects (~140 per record), find
    # nothing to free, and took 4 to 8 % of its time. This process collects once after each
    # record instead (~0.1 ms), so what an error path leaves never outlives its record.
    gc.disable()


def _ready(timeout: float) -> int:
    """Wait until every process of the pool is here. A process runs one task at a time, so
    one such task per process can only all return once each process has taken one: once
    every process is up. (Without the wait, the first process up took them all, and a batch
    began while another was still importing — inside the batch's time, on its cores.)"""
    if _started is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("verification process started without its initializer")
    _started.wait(timeout)
    return os.getpid()


def _verify(pdf: bytes, now: datetime) -> VerificationReport:
    global _frozen
    if _verifier is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("verification process started without its verifier")
    try:
        return replace(_verifier, clock=lambda: now).verify(pdf)
    finally:
        if not _frozen:  # the first record has filled the caches that last: freeze those too
            _frozen = True
            freeze_long_lived()
        else:
            gc.collect()


def _start_failure(exc: BaseException, causes: list[str], processes: int) -> str:
    """What to tell whoever started the batch when its verification processes did not all
    start: nothing of the batch has been verified or stored yet, so it can simply be run
    again once the cause is dealt with."""
    if causes:
        why = f"một tiến trình báo lỗi khi khởi động: {causes[0]}"
    elif isinstance(exc, threading.BrokenBarrierError):
        seconds = f"{START_TIMEOUT:g}".replace(".", ",")  # Vietnamese decimal comma
        why = (f"sau {seconds} giây vẫn chưa đủ {processes} tiến trình sẵn sàng "
               "(máy đang quá tải hoặc thiếu bộ nhớ?)")
    else:
        why = "một tiến trình dừng đột ngột khi khởi động (bị dừng từ bên ngoài, hoặc thiếu bộ nhớ?)"
    return (f"Không khởi động được {processes} tiến trình xác minh chữ ký: {why}. Chưa hồ sơ nào "
            "được xác minh hay lưu; xử lý nguyên nhân rồi chạy lại, hoặc chạy với ít tiến trình "
            "hơn (--processes 1 xác minh ngay trong tiến trình chính).")


class VerifyPool:
    """``processes`` copies of ``verifier`` in their own processes."""

    def __init__(self, verifier: Verifier, processes: int) -> None:
        if type(verifier) is not Verifier:
            # A subclass changes what verify() does; the copies would not.
            raise TypeError(f"{type(verifier).__name__} cannot be copied into verification "
                            "processes: verify serially (verify_processes=1)")
        if processes < 2:
            raise ValueError("a verification pool needs at least two processes")
        self.processes = processes
        self.started: frozenset[int] = frozenset()  # the processes that answered, once all were up
        self._clock = verifier.clock
        bindings = dict(verifier.bindings.by_fingerprint) if verifier.bindings is not None else None
        self._initargs = ([c.dump() for c in verifier.trust_roots], bindings, verifier.online)
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        barrier, failures = context.Barrier(self.processes), context.SimpleQueue()
        pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start,
                                   initargs=(*self._initargs, barrier, failures))
        # One task per process, each waiting for the others (_ready): done when all are up.
        ready = [pool.submit(_ready, START_TIMEOUT) for _ in range(self.processes)]
        try:
            self.started = frozenset(f.result() for f in ready)
        except (BrokenProcessPool, threading.BrokenBarrierError) as exc:
            pool.shutdown(wait=True, cancel_futures=True)
            causes = []
            while not failures.empty():
                causes.append(failures.get())
            raise ArchiveError(_start_failure(exc, causes, self.processes),
                               code="verify_pool_start") from exc
        finally:
            failures.close()
        return pool

    def submit(self, pdf: bytes) -> Future[VerificationReport]:
        """The record's report, to come. A pool that lost a process (killed, out of memory)
        is replaced here; the records it was verifying fail with ``BrokenProcessPool``."""
        try:
            return self._pool.submit(_verify, pdf, self._clock())
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(_verify, pdf, self._clock())

    def pids(self) -> list[int]:
        """The verification processes' ids (to watch them, or to stop one in a test)."""
        return [p.pid for p in list(getattr(self._pool, "_processes", {}).values())
                if p.pid is not None]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
