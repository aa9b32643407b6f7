"""Batch ingest (`Archive.ingest_many`): a record that fails leaves no trace, the others go in.

Each failure is injected where it would really happen — verification, an upload, the log
append, the index commit — and the archive is then checked the way an auditor would, with
`hsdt audit log`'s checker: log, index and store agree, nothing is half-written.
"""

from __future__ import annotations

import errno
import gc
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import World

from hsdt.archive import verify_pool
from hsdt.archive.audit import audit_log
from hsdt.archive.ingest import Archive, record_digest
from hsdt.archive.store import LocalWormStore, StoredObject
from hsdt.domain.canonical import sha256_hex
from hsdt.domain.errors import ArchiveError, HsdtError
from hsdt.signing.verification import VerificationReport, Verifier
from hsdt.workflow import render


@pytest.fixture(scope="module")
def other_sealed(world: World) -> bytes:
    """A second student's sealed record."""
    return world.sealed(world.records[1])


@pytest.fixture(scope="module")
def renewed(world: World, sealed: bytes) -> bytes:
    """The first student's record again, with a new archive timestamp: same record, other bytes."""
    return world.signer.renew(sealed)


@pytest.fixture(scope="module")
def unsigned(world: World) -> bytes:
    return render(world.records[3])


class FailingStore(LocalWormStore):
    """A local store whose upload of chosen keys fails, as a store refusing or unreachable would.

    It also notes, for each record object written, whether the archive vouched that nothing
    was written under its key before (``unwritten``: the upload journal)."""

    def __init__(self, root: Path, fail: set[str] | None = None) -> None:
        super().__init__(root)
        self.fail = fail or set()
        self.vouched: dict[str, bool] = {}

    def put_locked(self, key: str, data: bytes, *, retain_until: datetime,
                   metadata: dict[str, str] | None = None, legal_hold: bool = False,
                   unwritten: bool = False) -> StoredObject:
        if key.startswith("records/"):
            self.vouched[record_digest(key)] = unwritten
        if any(part in key for part in self.fail):
            raise ArchiveError(f"kho từ chối «{key}» (test)", code="storage_error")
        return super().put_locked(key, data, retain_until=retain_until, metadata=metadata,
                                  legal_hold=legal_hold, unwritten=unwritten)


def _archive(world: World, root: Path, fail: set[str] | None = None) -> Archive:
    return Archive(FailingStore(root, fail), root, world.verifier(online=False))


def _stored_records(root: Path) -> list[Path]:
    return sorted((root / "objects" / "records").rglob("*.pdf"))


def test_a_refused_record_is_reported_and_the_others_go_in(world: World, sealed: bytes,
                                                           other_sealed: bytes, unsigned: bytes,
                                                           tmp_path: Path) -> None:
    archive = _archive(world, tmp_path)
    verified: list[int] = []
    out = archive.ingest_many([sealed, unsigned, other_sealed, sealed], progress=verified.append)
    assert verified == [1, 2, 3, 4]  # each record, refused and repeated ones included
    assert [o.ok for o in out] == [True, False, True, True]
    assert out[1].error is not None and out[1].error.code == "ingest_refused"
    assert out[3] == out[0]  # the same bytes twice: stored and logged once
    assert [o.report.valid for o in (out[0], out[2]) if o.report] == [True, True]
    assert archive.log.size == 2 and len(archive.entries()) == 2 and len(_stored_records(tmp_path)) == 2
    assert [e.sha256 for e in archive.entries()] == [sha256_hex(sealed), sha256_hex(other_sealed)]
    assert audit_log(archive) == []
    again = archive.ingest_many([other_sealed, sealed])  # redelivered: nothing new
    assert [o.entry for o in again] == [out[2].entry, out[0].entry] and archive.log.size == 2


def test_a_failed_upload_leaves_no_record_object(world: World, sealed: bytes, other_sealed: bytes,
                                                 renewed: bytes, tmp_path: Path) -> None:
    failing = sha256_hex(other_sealed)
    archive = _archive(world, tmp_path, fail={f"{failing}.pdf"})  # its record object, after its report
    out = archive.ingest_many([sealed, other_sealed, renewed])
    assert [o.ok for o in out] == [True, False, True]
    assert out[1].error is not None and out[1].error.code == "storage_error"
    assert out[1].report is not None and out[1].report.valid  # verified, then not stored
    assert [e.sha256 for e in archive.entries()] == [sha256_hex(sealed), sha256_hex(renewed)]
    assert [e.revision for e in archive.entries()] == [1, 2]  # the same record, twice
    assert archive.log.size == 2 and len(_stored_records(tmp_path)) == 2
    assert audit_log(archive) == []
    archive.close()
    healed = _archive(world, tmp_path)  # the store answers again: the retry stores it
    (entry,) = [o.entry for o in healed.ingest_many([other_sealed])]
    assert entry is not None and entry.revision == 1 and entry.log_index == 2
    assert audit_log(healed) == []


def test_the_upload_journal_names_exactly_the_records_that_may_have_left_objects(
        world: World, sealed: bytes, other_sealed: bytes, unsigned: bytes, tmp_path: Path) -> None:
    """Journaled before their first write, forgotten once indexed: a refused record leaves no
    entry, a failed write keeps one, and only a record the journal did not name already is
    written without looking for an earlier version."""
    failing = sha256_hex(other_sealed)
    store = FailingStore(tmp_path, fail={f"{failing}.pdf"})
    archive = Archive(store, tmp_path, world.verifier(online=False))
    assert archive.index.get_state("upload_journal") == "complete"  # the store held nothing
    out = archive.ingest_many([sealed, unsigned, other_sealed])
    assert [o.ok for o in out] == [True, False, False]  # refused; its write failed
    assert archive.index.begun_uploads() == [failing]
    assert store.vouched == {sha256_hex(sealed): True, failing: True}
    archive.close()
    store = FailingStore(tmp_path)
    healed = Archive(store, tmp_path, world.verifier(online=False))
    assert [o.ok for o in healed.ingest_many([other_sealed])] == [True]
    assert store.vouched == {failing: False}  # journaled by the failed attempt: looked for
    assert healed.index.begun_uploads() == [] and audit_log(healed) == []


def test_an_index_opened_over_a_store_that_holds_objects_keeps_looking(
        world: World, sealed: bytes, other_sealed: bytes, tmp_path: Path) -> None:
    first = Archive(LocalWormStore(tmp_path / "store"), tmp_path / "a", world.verifier(online=False))
    first.ingest(sealed)
    first.close()
    store = FailingStore(tmp_path / "store")
    second = Archive(store, tmp_path / "b", world.verifier(online=False))
    assert second.index.get_state("upload_journal") == "partial"
    assert [o.ok for o in second.ingest_many([sealed, other_sealed])] == [True, True]
    assert store.vouched == {sha256_hex(sealed): False, sha256_hex(other_sealed): False}


def test_a_failed_report_upload_leaves_nothing_under_records(world: World, sealed: bytes,
                                                             tmp_path: Path) -> None:
    # The report is stored before the record: a failure between the two must not leave a
    # record object the log does not know (the audit would call it added behind our back).
    archive = _archive(world, tmp_path, fail={"reports/"})
    with pytest.raises(ArchiveError) as info:
        archive.ingest(sealed)
    assert info.value.code == "storage_error"
    assert _stored_records(tmp_path) == [] and archive.log.size == 0 and archive.entries() == []
    assert audit_log(archive) == []


def test_a_log_failure_fails_the_batch_and_the_retry_adopts_the_objects(
        world: World, sealed: bytes, other_sealed: bytes, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(world, tmp_path)
    real_extend = archive.log.extend

    def full_disk(entries: Any) -> range:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive.log, "extend", full_disk)
    out = archive.ingest_many([sealed, other_sealed])
    assert [o.error.code for o in out if o.error] == ["commit_failed", "commit_failed"]
    assert archive.log.size == 0 and archive.entries() == []
    # Write-once objects cannot be taken back: the audit names them until the retry, as what
    # an interrupted ingest left (the records are journaled), not as written around the service.
    found = audit_log(archive)
    assert [f.code for f in found] == ["object_ingest_interrupted"] * 2
    assert "Chạy lại «hsdt archive ingest»" in found[0].message
    monkeypatch.setattr(archive.log, "extend", real_extend)
    again = archive.ingest_many([sealed, other_sealed])
    assert all(o.ok for o in again) and archive.log.size == 2
    assert len(_stored_records(tmp_path)) == 2  # adopted, not stored twice
    assert audit_log(archive) == []


def test_an_index_failure_after_the_log_is_answered_from_the_log(
        world: World, sealed: bytes, other_sealed: bytes, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(world, tmp_path)
    real = archive._index_events
    calls = {"n": 0}

    def fails_once(logged: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(logged)

    monkeypatch.setattr(archive, "_index_events", fails_once)
    out = archive.ingest_many([sealed, other_sealed])
    # Logged, so archived: recover() indexed them at once and the outcomes say so.
    assert all(o.ok for o in out) and [o.entry.log_index for o in out if o.entry] == [0, 1]
    assert audit_log(archive) == []


def test_an_index_that_stays_down_is_recovered_by_the_next_open(
        world: World, sealed: bytes, other_sealed: bytes, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(world, tmp_path)

    def down(logged: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(archive, "_index_events", down)
    out = archive.ingest_many([sealed, other_sealed])
    assert [o.error.code for o in out if o.error] == ["commit_failed", "commit_failed"]
    assert archive.log.size == 2 and archive.entries() == []
    archive.close()
    reopened = _archive(world, tmp_path)  # recover() on open indexes what the log holds
    assert [e.log_index for e in reopened.entries()] == [0, 1]
    again = reopened.ingest_many([sealed, other_sealed])  # the caller's retry: no duplicate
    assert all(o.ok for o in again) and reopened.log.size == 2
    assert audit_log(reopened) == []


def test_a_batch_gives_what_one_by_one_gives(world: World, sealed: bytes, renewed: bytes,
                                             other_sealed: bytes, tmp_path: Path) -> None:
    one = _archive(world, tmp_path / "one")
    for pdf in (sealed, other_sealed, renewed):
        one.ingest(pdf)
    many = _archive(world, tmp_path / "many")
    many.ingest_many([sealed, other_sealed, renewed])

    def facts(a: Archive) -> list[tuple[Any, ...]]:
        return [(e.sha256, e.record_id, e.revision, e.key, e.log_index, e.superseded_by)
                for e in a.entries()]

    assert facts(one) == facts(many)
    assert [e.revision for e in many.entries()] == [1, 1, 2]
    assert [ev.type for ev in many.index.events()] == ["ingestion"] * 3


def test_a_report_made_before_the_lock_is_not_made_again(world: World, sealed: bytes,
                                                         tmp_path: Path) -> None:
    """The service verifies a sealed record before taking the archive's lock and hands the
    report over: the archive stores it as its own, and verifies nothing a second time."""
    archive = _archive(world, tmp_path / "a")
    report = world.verifier().verify(sealed)
    calls: list[bytes] = []
    verify = archive.verifier.verify
    archive.verifier.verify = lambda pdf: calls.append(pdf) or verify(pdf)  # type: ignore[method-assign]
    entry, stored_report = archive.ingest(sealed, verified=report)
    assert calls == [] and stored_report is report
    assert entry.sha256 == sha256_hex(sealed) and archive.index.by_sha(entry.sha256) == entry
    assert audit_log(archive) == []
    again, _ = archive.ingest(sealed)  # without a report: verified here, stored once
    assert calls == [sealed] and again == entry


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_pool_is_handed_over_once_every_process_is_up(world: World) -> None:
    """A batch must not begin while a verification process is still starting: its import
    would take the cores the batch runs on, and the batch would wait for it."""
    pool = verify_pool.VerifyPool(world.verifier(online=False), 2)
    try:
        pids = pool.pids()
        assert len(pids) == 2 and pool.started == set(pids)  # each answered, none for another
        before = [_cpu_seconds(p) for p in pids]
        time.sleep(0.5)
        busy = [_cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
        assert max(busy) < 0.1, busy  # idle: nothing left of their start-up
    finally:
        pool.close()


class _UnreadableAnchor:
    """A trust anchor whose encoding is cut short: what a damaged anchor file gives."""

    def dump(self) -> bytes:
        return b"\x30\x03\x02\x01"


def test_a_pool_whose_process_cannot_start_says_why_and_leaves_no_process(world: World) -> None:
    verifier = replace(world.verifier(online=False), trust_roots=[_UnreadableAnchor()])
    with pytest.raises(ArchiveError) as err:
        verify_pool.VerifyPool(verifier, 2)
    assert err.value.code == "verify_pool_start"
    message = str(err.value)
    assert message.startswith("Không khởi động được 2 tiến trình xác minh chữ ký")
    # the process's own error, which the pool alone would have reduced to "terminated abruptly"
    assert "ValueError: Insufficient data" in message
    assert "--processes 1" in message
    assert multiprocessing.active_children() == []


def test_a_pool_whose_processes_are_not_all_up_in_time_says_so(world: World,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One process of two never comes up: the other stops waiting at START_TIMEOUT."""

    def one_short(processes: int, **kwargs: Any) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(processes - 1, **kwargs)

    monkeypatch.setattr(verify_pool, "START_TIMEOUT", 0.5)
    monkeypatch.setattr(verify_pool, "ProcessPoolExecutor", one_short)
    with pytest.raises(ArchiveError) as err:
        verify_pool.VerifyPool(world.verifier(online=False), 2)
    assert err.value.code == "verify_pool_start"
    assert "sau 0,5 giây vẫn chưa đủ 2 tiến trình sẵn sàng" in str(err.value)
    assert isinstance(err.value.__cause__, threading.BrokenBarrierError)
    assert multiprocessing.active_children() == []


def test_a_batch_verified_by_several_processes_gives_what_one_process_gives(
        world: World, sealed: bytes, renewed: bytes, other_sealed: bytes, unsigned: bytes,
        tmp_path: Path) -> None:
    """`verify_processes=2`: the records are judged in other processes, with the same trust
    anchors, registry and clock, and go in exactly as a serial batch puts them."""
    moment = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a clock the pool must honour
    serial = Archive(LocalWormStore(tmp_path / "serial"), tmp_path / "serial",
                     replace(world.verifier(online=False), clock=lambda: moment))
    pooled = Archive(LocalWormStore(tmp_path / "pooled"), tmp_path / "pooled",
                     replace(world.verifier(online=False), clock=lambda: moment), verify_processes=2)
    calls: list[bytes] = []
    here = pooled.verifier.verify
    pooled.verifier.verify = lambda pdf: calls.append(pdf) or here(pdf)  # type: ignore[method-assign]
    try:
        # Started, no record yet: what the processes hold is already frozen (hsdt.heap), so
        # the first record does not pay for a full collection of it.
        assert pooled._pool is not None
        at_start = [pooled._pool._pool.submit(gc.get_freeze_count).result() for _ in range(4)]
        assert min(at_start) > 10_000, at_start
        batch = [sealed, unsigned, other_sealed, renewed, sealed]
        one, many = serial.ingest_many(batch), pooled.ingest_many(batch)
        assert calls == []  # every record of the batch was verified by the pool
        assert [o.ok for o in many] == [o.ok for o in one] == [True, False, True, True, True]
        assert [o.report for o in many] == [o.report for o in one]  # same verdicts, same reasons
        assert many[1].error is not None and one[1].error is not None
        assert (many[1].error.code, many[1].error.message) == (one[1].error.code, one[1].error.message)
        assert all(o.report is None or o.report.verified_at == moment.isoformat(timespec="seconds")
                   for o in many)
        assert [(e.sha256, e.record_id, e.revision, e.key, e.superseded_by) for e in pooled.entries()] \
            == [(e.sha256, e.record_id, e.revision, e.key, e.superseded_by) for e in serial.entries()]
        assert audit_log(pooled) == []
        # A process that has verified a record has frozen what it keeps (hsdt.heap).
        frozen = [pooled._pool._pool.submit(gc.get_freeze_count).result() for _ in range(4)]
        assert max(frozen) > 10_000, frozen
        # No automatic collections in a verification process (it collects after each record).
        assert [pooled._pool._pool.submit(gc.isenabled).result() for _ in range(4)] == [False] * 4
        entry, _ = pooled.ingest(other_sealed)  # a single record: verified here
        assert calls == [other_sealed] and entry == pooled.index.by_sha(sha256_hex(other_sealed))
    finally:
        pooled.close()
        serial.close()


def test_a_verification_process_collects_after_each_record(
        world: World, sealed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """With automatic collections off, whatever cyclic garbage a record leaves is collected
    when its verification ends, not left to pile up over the batch."""
    monkeypatch.setattr(verify_pool, "_verifier", world.verifier(online=False))
    monkeypatch.setattr(verify_pool, "_frozen", True)  # past its first record
    original = Verifier.verify
    cycles: list[int] = []

    def leaving_a_cycle(self: Verifier, pdf: bytes) -> VerificationReport:
        loop: list[object] = []
        loop.append(loop)  # only a collection frees this
        cycles.append(id(loop))
        return original(self, pdf)

    monkeypatch.setattr(Verifier, "verify", leaving_a_cycle)
    enabled = gc.isenabled()
    gc.disable()  # as in a verification process
    try:
        gc.collect()
        report = verify_pool._verify(sealed, datetime.now(UTC))
        left = gc.collect()
    finally:
        if enabled:
            gc.enable()
    assert report.valid and cycles and left == 0


def test_a_damaged_file_in_a_pooled_batch_is_refused_with_its_reason(
        world: World, sealed: bytes, tmp_path: Path) -> None:
    damaged = sealed[: len(sealed) // 2]
    pooled = Archive(LocalWormStore(tmp_path), tmp_path, world.verifier(online=False),
                     verify_processes=2)
    try:
        with pytest.raises(HsdtError) as serially:
            world.verifier(online=False).verify(damaged)
        out = pooled.ingest_many([damaged, sealed])
        assert [o.ok for o in out] == [False, True]
        err = out[0].error
        assert err is not None and type(err) is type(serially.value)
        assert (err.code, err.message) == (serially.value.code, serially.value.message)
        assert [e.sha256 for e in pooled.entries()] == [sha256_hex(sealed)]
    finally:
        pooled.close()


def test_a_verifier_that_changes_verify_is_not_copied_into_processes(world: World,
                                                                    tmp_path: Path) -> None:
    class Strict(Verifier):
        def verify(self, pdf: bytes) -> VerificationReport:
            raise AssertionError("not this")

    with pytest.raises(TypeError, match="verify serially"):
        Archive(LocalWormStore(tmp_path), tmp_path, Strict(world.pki.trust_roots()),
                verify_processes=2)


@pytest.fixture(scope="module")
def renewals(world: World, sealed: bytes) -> list[bytes]:
    """Eight versions of the first student's record, each renewed from the one before:
    distinct bytes, so a batch of them keeps the verification processes busy."""
    out = [sealed]
    for _ in range(7):
        out.append(world.signer.renew(out[-1]))
    return out


def test_a_verification_process_killed_mid_batch_loses_nothing(
        world: World, renewals: list[bytes], tmp_path: Path) -> None:
    pooled = Archive(LocalWormStore(tmp_path), tmp_path, world.verifier(online=False),
                     verify_processes=2)
    try:
        victim = pooled.verification_pids()[0]

        def kill_soon() -> None:
            time.sleep(0.3)  # a batch of eight takes a second or more to verify
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        out = pooled.ingest_many(renewals)
        killer.join()
        interrupted = [o for o in out if not o.ok]
        assert interrupted, "the kill came after the batch: nothing was tested"
        assert {o.error.code for o in interrupted if o.error} == {"verification_interrupted"}
        assert audit_log(pooled) == []  # what went in is whole; the rest left no trace
        assert {e.sha256 for e in pooled.entries()} == {o.sha256 for o in out if o.ok}
        again = pooled.ingest_many(renewals)  # a new pool; the stored ones are found, not redone
        assert all(o.ok for o in again) and victim not in pooled.verification_pids()
        assert sorted(e.sha256 for e in pooled.entries()) == sorted(sha256_hex(p) for p in renewals)
        assert sorted(e.revision for e in pooled.entries()) == list(range(1, 9))  # each once
        assert audit_log(pooled) == []
    finally:
        pooled.close()


def test_a_renewal_is_journaled_before_it_is_written(world: World, sealed: bytes, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A renewal stored but never logged (the log failed) leaves its record journaled: the
    next ingest of those bytes looks for the object and adopts it."""
    store = FailingStore(tmp_path)
    archive = Archive(store, tmp_path, world.verifier(online=False))
    old, _ = archive.ingest(sealed)
    made: list[bytes] = []

    def renew(pdf: bytes) -> bytes:
        made.append(world.signer.renew(pdf))
        return made[-1]

    def log_down(*_: object, **__: object) -> None:
        raise OSError("đĩa đầy (test)")

    monkeypatch.setattr(archive.log, "extend", log_down)
    with pytest.raises(OSError):
        archive.renew(old, renew)
    monkeypatch.undo()
    (renewed,) = made
    assert archive.index.begun_uploads() == [sha256_hex(renewed)]
    store.vouched.clear()
    (out,) = archive.ingest_many([renewed])
    assert out.ok and store.vouched == {sha256_hex(renewed): False}
    assert archive.index.begun_uploads() == [] and audit_log(archive) == []
