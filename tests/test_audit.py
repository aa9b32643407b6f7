"""`hsdt audit log` and fixity: every kind of tampering named; crashes mid-ingest recovered."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import World

from hsdt.archive import audit
from hsdt.archive.audit import audit_log, fixity_audit
from hsdt.archive.ingest import Archive, load_or_create_log_key
from hsdt.archive.store import LocalWormStore
from hsdt.archive.tlog import SignedTreeHead, TransparencyLog, parse_tree_heads
from hsdt.domain.canonical import canonical_json, sha256_hex
from hsdt.domain.errors import ArchiveError


@pytest.fixture(scope="module")
def two_sealed(world: World, sealed: bytes) -> list[bytes]:
    return [sealed, world.sealed(world.records[2])]


def _fresh(world: World, root: Path, pdfs: list[bytes]) -> Archive:
    archive = Archive(LocalWormStore(root), root, world.verifier(online=False))
    for pdf in pdfs:
        archive.ingest(pdf)
    return archive


def _codes(archive: Archive) -> set[str]:
    return {f.code for f in audit_log(archive)}


def _object_path(archive: Archive, n: int) -> Path:
    path = archive.root / "objects" / archive.entries()[n].key
    path.chmod(0o644)
    return path


def test_untouched_archive_is_clean(world: World, two_sealed: list[bytes], tmp_path: Path) -> None:
    archive = _fresh(world, tmp_path, two_sealed)
    assert audit_log(archive) == []
    assert audit_log(archive) == []  # and stays clean once the tree head is remembered


def test_object_removed(world: World, two_sealed: list[bytes], tmp_path: Path) -> None:
    archive = _fresh(world, tmp_path, two_sealed)
    _object_path(archive, 0).unlink()
    findings = audit_log(archive)
    assert [f.code for f in findings] == ["object_missing"]
    assert archive.entries()[0].key in findings[0].message


def test_object_replaced_and_bit_flipped(world: World, two_sealed: list[bytes],
                                         tmp_path: Path) -> None:
    archive = _fresh(world, tmp_path, two_sealed)
    _object_path(archive, 0).write_bytes(two_sealed[1])  # another genuine record in its place
    path = _object_path(archive, 1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))
    findings = audit_log(archive)
    assert sorted(f.code for f in findings) == ["object_altered", "object_altered"]


def test_index_row_edited(world: World, two_sealed: list[bytes], tmp_path: Path) -> None:
    archive = _fresh(world, tmp_path, two_sealed)
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        db.execute("UPDATE records SET school_year = '2019-2020' WHERE log_index = 1")
    findings = audit_log(archive)
    assert [f.code for f in findings] == ["index_altered"]
    assert "school_year" in findings[0].message


def test_log_entry_removed(world: World, two_sealed: list[bytes], tmp_path: Path) -> None:
    archive = _fresh(world, tmp_path, two_sealed)
    assert audit_log(archive) == []  # the auditor has seen the tree head with 2 entries
    archive.close()
    truncate_log_to(tmp_path / "log", 1)
    reopened = Archive(LocalWormStore(tmp_path), tmp_path, world.verifier(online=False))
    codes = _codes(reopened)
    assert "log_truncated" in codes and "index_outside_log" in codes


def _rewrite_history(archive: Archive, edit: Callable[[list[dict]], list[dict]]) -> Archive:
    """An intruder with the server's files: the log rebuilt from edited events, signed again
    with the log key kept beside it, and the audit's remembered tree head moved to match.
    Everything the archive holds is consistent afterwards."""
    root, verifier = archive.root, archive.verifier
    events = edit([json.loads(archive.log.entry(i)) for i in range(archive.log.size)])
    archive.close()
    shutil.rmtree(root / "log")
    with TransparencyLog.open(root / "log", load_or_create_log_key(root / "log.key")) as log:
        log.extend([canonical_json(e) for e in events])
        log.signed_tree_head()
        state = {"size": log.size, "root": log.root().hex()}
    reopened = Archive(LocalWormStore(root), root, verifier)
    reopened.index.set_state("audited_tree_head", json.dumps(state))
    return reopened


def test_kept_tree_heads_catch_a_history_rewritten_with_the_servers_own_key(
        world: World, two_sealed: list[bytes], tmp_path: Path) -> None:
    """Back-dating an ingest by rewriting the log, its tree heads and the audit's memory with
    the key on the same server passes every check inside the archive; the tree heads a Sở
    exported earlier and kept elsewhere catch it."""
    archive = _fresh(world, tmp_path, two_sealed[:1])
    archive.log.signed_tree_head()
    kept = parse_tree_heads(archive.log.export_tree_heads())  # the Sở's copy: size 1
    pinned = archive.log.public_key
    archive.ingest(two_sealed[1])
    assert audit_log(archive, kept, pinned) == []  # grown since: consistent with the copy

    def backdate(events: list[dict]) -> list[dict]:
        events[0]["at"] = "2019-09-05T08:00:00Z"
        return events

    rewritten = _rewrite_history(archive, backdate)
    assert audit_log(rewritten) == []  # nothing inside the archive disagrees any more
    findings = audit_log(rewritten, kept, pinned)
    assert [f.code for f in findings] == ["log_rewritten"]
    assert "kích thước 1" in findings[0].message and "viết lại" in findings[0].message


def test_kept_tree_heads_catch_a_shortened_log_and_a_changed_key(
        world: World, two_sealed: list[bytes], tmp_path: Path) -> None:
    archive = _fresh(world, tmp_path, two_sealed)
    archive.log.signed_tree_head()
    kept = parse_tree_heads(archive.log.export_tree_heads())  # size 2
    pinned = archive.log.public_key
    shortened = _rewrite_history(archive, lambda events: events[:1])
    codes = [f.code for f in audit_log(shortened, kept, pinned)]
    assert "log_truncated" in codes and "index_outside_log" in codes
    shortened.close()
    (tmp_path / "log.key").unlink()  # a new key: the history signed again by someone else
    resigned = _rewrite_history(Archive(LocalWormStore(tmp_path), tmp_path,
                                        world.verifier(online=False)), lambda events: events)
    codes = [f.code for f in audit_log(resigned, kept, pinned)]
    assert codes[0] == "log_key_changed"
    forged = SignedTreeHead(kept[0].log_id, kept[0].size, kept[0].root_hash,
                            kept[0].timestamp_ms + 1, kept[0].signature)  # an edited kept copy
    assert "kept_head_signature" in {f.code for f in audit_log(resigned, [forged], pinned)}


def test_cli_exports_tree_heads_and_audits_against_the_kept_copy(
        world: World, two_sealed: list[bytes], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hsdt.archive.tlog import load_public_key, verify_tree_head
    from hsdt.cli import app

    root, pki = tmp_path / "kho", ["--pki", str(world.pki.workdir)]
    _fresh(world, root, two_sealed[:1]).close()
    kept, key = tmp_path / "so" / "heads.jsonl", tmp_path / "so" / "log.pub.pem"
    runner = CliRunner()
    r = runner.invoke(app, ["audit", "heads", "--root", str(root), "--out", str(kept),
                            "--key-out", str(key), *pki])
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    heads = parse_tree_heads(kept.read_text())
    assert [h.size for h in heads] == [1]
    assert all(verify_tree_head(h, load_public_key(key.read_bytes(), "key")) for h in heads)
    assert f"Đã xuất 1 đầu cây → {kept}" in said and "kích thước 1" in said
    assert f"--heads {kept} --log-key {key}" in said  # the next audit, spelled out
    archive = _fresh(world, root, two_sealed[1:])
    archive.close()
    audit = ["audit", "log", "--root", str(root), "--heads", str(kept), "--log-key", str(key), *pki]
    r = runner.invoke(app, audit)
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "Kho sạch" in said and "Nhật ký nối tiếp đủ 1 đầu cây lưu giữ riêng" in said
    assert "ký bằng khoá đã ghim" in said
    reopened = Archive(LocalWormStore(root), root, world.verifier(online=False))
    _rewrite_history(reopened, lambda events: [events[1], events[0]]).close()  # reordered
    r = runner.invoke(app, audit)
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and "(log_rewritten)" in said and "kích thước 1" in said
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"size": 1}\n')
    r = runner.invoke(app, ["audit", "log", "--root", str(root), "--heads", str(bad), *pki])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and f"Tệp đầu cây lưu giữ {bad} không đọc được" in said
    r = runner.invoke(app, ["audit", "log", "--root", str(root), "--log-key", str(kept), *pki])
    assert r.exit_code == 2 and "không phải khoá công khai PEM" in " ".join(r.output.split())


def test_object_added_outside_the_service(world: World, two_sealed: list[bytes],
                                          tmp_path: Path) -> None:
    archive = _fresh(world, tmp_path, two_sealed[:1])
    from datetime import UTC, datetime

    archive.store.put_locked("records/hoc_ba_thcs/ff/" + "f" * 64 + ".pdf", two_sealed[1],
                             retain_until=datetime(2126, 1, 1, tzinfo=UTC))
    assert _codes(archive) == {"object_outside_log"}


def test_fixity_sweep_resumes_and_records_events(world: World, two_sealed: list[bytes],
                                                 tmp_path: Path) -> None:
    archive = _fresh(world, tmp_path, two_sealed)
    first = fixity_audit(archive, limit=1)
    assert first.checked == 1 and not first.completed_sweep and not first.failures
    second = fixity_audit(archive, limit=5)  # resumes with the second record
    assert second.checked == 1 and second.completed_sweep
    events = archive.index.events(type_="fixity check")
    assert [e.outcome for e in events] == ["success", "success"]
    assert {e.sha256 for e in events} == {e.sha256 for e in archive.entries()}
    path = _object_path(archive, 0)
    path.write_bytes(b"%PDF-1.7 not the record")
    sampled = fixity_audit(archive, sample=2, seed=1)
    assert sampled.checked == 2 and [f.code for f in sampled.failures] == ["object_altered"]
    assert archive.index.events(sha256=archive.entries()[0].sha256, type_="fixity check")[-1].outcome \
        == "failure"


def test_object_and_its_recorded_digest_replaced_together(world: World, two_sealed: list[bytes],
                                                         tmp_path: Path) -> None:
    # An intruder who rewrites the object *and* the store's own record of its digest passes
    # the store's check; the sweep reads each object once and hashes it once, so that one
    # hash must also be held against the log's digest.
    archive = _fresh(world, tmp_path, two_sealed)
    entry = archive.entries()[0]
    _object_path(archive, 0).write_bytes(two_sealed[1])
    meta = _object_path(archive, 0).with_name(_object_path(archive, 0).name + ".meta.json")
    meta.chmod(0o644)
    recorded = json.loads(meta.read_text())
    meta.write_text(json.dumps({**recorded, "sha256": sha256_hex(two_sealed[1]),
                                "size": len(two_sealed[1])}))
    assert archive.store.get(entry.key) == two_sealed[1]  # the store alone is fooled
    run = fixity_audit(archive)
    assert [f.code for f in run.failures] == ["object_altered"]
    assert [f.code for f in audit_log(archive)] == ["object_altered"]
    with pytest.raises(ArchiveError) as info:
        archive.get(entry)
    assert info.value.code == "fixity_failed"


def test_fixity_sweep_over_several_batches(world: World, two_sealed: list[bytes], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of one: each batch's events commit while the next batch is read.
    monkeypatch.setattr(audit, "_BATCH", 1)
    archive = _fresh(world, tmp_path, two_sealed)
    bad = _object_path(archive, 1)
    bad.write_bytes(b"%PDF-1.7 not the record")
    run = fixity_audit(archive, readers=2)
    assert run.checked == 2 and run.completed_sweep
    assert [f.log_index for f in run.failures] == [1]
    events = archive.index.events(type_="fixity check")
    assert [(e.sha256, e.outcome) for e in events] == [(e.sha256, o) for e, o in
                                                        zip(archive.entries(), ["success", "failure"],
                                                            strict=True)]
    assert archive.index.get_state("fixity_cursor") == "-1"  # a finished sweep starts over
    first = fixity_audit(archive, limit=1, readers=1)
    assert first.checked == 1 and not first.completed_sweep
    assert archive.index.get_state("fixity_cursor") == "0"


_CRASH = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from hsdt.archive import ingest
    from hsdt.archive.store import LocalWormStore
    from hsdt.signing import testpki
    from hsdt.signing.bindings import CertificateBindings
    from hsdt.signing.verification import Verifier
    root, pki_dir, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[4]
    pdfs = [Path(p).read_bytes() for p in sys.argv[3].split(os.pathsep)]
    pki = testpki.load(pki_dir)
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if point == "after_store":
        ingest.TransparencyLog.extend = die  # every append goes through extend
    else:
        ingest.Archive._index_events = die
    archive = ingest.Archive(LocalWormStore(root), root,
                             Verifier(pki.trust_roots(), CertificateBindings(pki.bindings()), online=False))
    if len(pdfs) == 1:
        archive.ingest(pdfs[0])
    else:
        archive.ingest_many(pdfs)
""")


@pytest.mark.parametrize("batch", [False, True], ids=["one", "batch"])
@pytest.mark.parametrize("point", ["after_store", "after_log"])
def test_killed_ingest_is_completed_by_the_next_run(world: World, sealed: bytes, two_sealed: list[bytes],
                                                    tmp_path: Path, point: str, batch: bool) -> None:
    pdfs = two_sealed if batch else [sealed]
    paths = []
    for i, data in enumerate(pdfs):
        paths.append(tmp_path / f"record{i}.pdf")
        paths[-1].write_bytes(data)
    root = tmp_path / "archive"
    run = subprocess.run([sys.executable, "-c", _CRASH, str(root), str(world.pki.workdir),
                          os.pathsep.join(map(str, paths)), point], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == -9, run.stderr  # really killed
    stored = list((root / "objects" / "records").rglob("*.pdf"))
    assert len(stored) == len(pdfs)
    archive = Archive(LocalWormStore(root), root, world.verifier(online=False))
    if point == "after_log":  # the log had them: indexed on open, before any retry
        assert [e.sha256 for e in archive.entries()] == [sha256_hex(p) for p in pdfs]
    outcomes = archive.ingest_many(pdfs)  # the next run
    assert all(o.ok for o in outcomes)
    assert len(archive.entries()) == len(pdfs) and archive.log.size == len(pdfs)
    for o, data in zip(outcomes, pdfs, strict=True):
        assert o.entry is not None and archive.get(o.entry) == data
    assert len(list((root / "objects" / "records").rglob("*.pdf"))) == len(pdfs)
    assert audit_log(archive) == []
    os.sync()


def truncate_log_to(log_dir: Path, size: int) -> None:
    """Remove entries from the end of the log as an intruder would: cut the commit record
    (entries.idx, 8 bytes an entry — see the layout in hsdt/archive/tlog.py) so the rest
    looks like a torn write."""
    idx = log_dir / "entries.idx"
    with open(idx, "r+b") as fh:
        fh.truncate(size * 8)


def test_cli_archive_and_audit(world: World, two_sealed: list[bytes], tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from hsdt.cli import app

    root, pki = tmp_path / "kho", ["--pki", str(world.pki.workdir)]
    runner = CliRunner()
    for i, pdf in enumerate(two_sealed):
        f = tmp_path / f"r{i}.pdf"
        f.write_bytes(pdf)
        r = runner.invoke(app, ["archive", "ingest", str(f), "--root", str(root), *pki])
        assert r.exit_code == 0, r.output
    student = world.records[0].student.code
    r = runner.invoke(app, ["archive", "search", "--root", str(root), "--student", student, "--json"])
    found = json.loads(r.output)
    assert [e["student_code"] for e in found] == [student]
    # the table a clerk reads in an 80-column terminal still carries the whole id to copy
    r = runner.invoke(app, ["archive", "search", "--root", str(root), "--student", student],
                      env={"COLUMNS": "80"})
    assert r.exit_code == 0 and max(map(len, r.output.splitlines())) <= 80
    first_column = "".join(line.split("│")[1].strip() for line in r.output.splitlines()
                           if line.startswith("│"))
    assert first_column == found[0]["record_id"]
    r = runner.invoke(app, ["archive", "get", found[0]["record_id"], "--root", str(root),
                            "--out", str(tmp_path / "out"), *pki])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / f"{found[0]['record_id']}.pdf").read_bytes() == two_sealed[0]
    report = json.loads((tmp_path / "out" / f"{found[0]['record_id']}.report.json").read_text())
    assert report["verdict"] == "valid"
    assert report["archive"]["tree_size"] == 2 and report["archive"]["inclusion_proof"]
    r = runner.invoke(app, ["audit", "log", "--root", str(root), *pki])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and "Kho sạch: 2 mục nhật ký, 2 hồ sơ trong chỉ mục" in said
    head = TransparencyLog.open(root / "log", read_only=True).root().hex()
    assert f"Gốc cây nhật ký ở kích thước 2: {head}" in said  # what an auditor compares
    obj = root / "objects" / found[0]["key"]
    obj.chmod(0o644)
    obj.unlink()
    r = runner.invoke(app, ["audit", "log", "--root", str(root), *pki])
    assert r.exit_code == 1 and "object_missing" in r.output
    r = runner.invoke(app, ["audit", "fixity", "--root", str(root), *pki])
    assert r.exit_code == 1 and "Đã kiểm tra 2 hồ sơ, 1 lỗi" in " ".join(r.output.split())


@pytest.mark.parametrize("command", [
    ["archive", "search"], ["archive", "get", "any-record", "--out", "{out}"], ["archive", "renew"],
    ["audit", "log"], ["audit", "fixity"], ["audit", "heads", "--out", "{out}/heads.jsonl"],
    ["verify", "--public", "--record-id", "any-record"],
    ["transfer", "issue", "--student", "0102", "--out", "{out}/p.zip"],
], ids=lambda c: " ".join(c[:2]))
def test_commands_that_read_refuse_a_directory_without_an_archive(
        world: World, tmp_path: Path, command: list[str]) -> None:
    """A mistyped --root is named, not opened: opening would start an empty archive there,
    and `audit log` would call it clean. Nothing is created at that path."""
    from typer.testing import CliRunner

    from hsdt.cli import app

    kho = tmp_path / "truong" / "kho"
    _fresh(world, kho, []).close()  # an archive, one level below where the clerk points
    pki = [] if command == ["archive", "search"] else ["--pki", str(world.pki.workdir)]
    args = [a.replace("{out}", str(tmp_path / "out")) for a in command]
    for root, hint in [(tmp_path / "typo", None), (tmp_path / "truong", kho)]:
        r = CliRunner().invoke(app, [*args, "--root", str(root), *pki])
        said = " ".join(r.output.split())
        assert r.exit_code == 1, r.output
        assert f"Không có kho lưu trữ nào ở «{root}»" in said and "sạch" not in said
        assert (f"Có phải là «{hint}»?" in said) if hint else ("Có phải là" not in said)
    assert not (tmp_path / "typo").exists()
    assert sorted(p.name for p in (tmp_path / "truong").iterdir()) == ["kho"]
    assert not (tmp_path / "out").exists()


def test_cli_ingests_a_long_list_chunk_by_chunk(world: World, two_sealed: list[bytes], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are read and committed a chunk at a time (memory bounded on a whole school year);
    a file that cannot be read is named in its place and the others still go in."""
    from typer.testing import CliRunner

    from hsdt import cli

    monkeypatch.setattr(cli, "INGEST_CHUNK", 2)
    batches: list[int] = []
    ingest_many = Archive.ingest_many

    def spied(self: Archive, pdfs: list[bytes], **kw: object) -> object:
        batches.append(len(pdfs))
        return ingest_many(self, pdfs, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Archive, "ingest_many", spied)
    files = [tmp_path / "a.pdf", tmp_path / "missing.pdf", tmp_path / "b.pdf", tmp_path / "c.pdf"]
    files[0].write_bytes(two_sealed[0])
    files[2].write_bytes(two_sealed[1])
    files[3].write_bytes(b"not a pdf")
    root = tmp_path / "kho"
    r = CliRunner().invoke(cli.app, ["archive", "ingest", *map(str, files), "--root", str(root),
                                     "--pki", str(world.pki.workdir)])
    said = " ".join(r.output.split())
    assert r.exit_code == 1, r.output
    assert f"✗ {files[1]}: Không đọc được tệp {files[1]}: không có tệp hay thư mục này." in said
    assert f"✗ {files[3]}: Tệp không phải PDF." in said
    assert "2/4 hồ sơ đã vào kho; 2 hồ sơ bị từ chối" in said and "giữ đến 31/12/9999 (vĩnh viễn)" in said
    assert batches == [1, 2]  # [a, missing] then [b, c]: each chunk committed on its own
    archive = _fresh(world, root, [])
    assert [e.log_index for e in archive.entries()] == [0, 1] and audit_log(archive) == []
    events = [json.loads(archive.log.entry(i)) for i in range(archive.log.size)]
    assert [e["entry"]["sha256"] for e in events] == [sha256_hex(p) for p in two_sealed]


def test_cli_ingest_of_files_that_cannot_be_read_creates_no_archive(world: World,
                                                                   tmp_path: Path) -> None:
    """A batch where not one file can be read (a wrong glob, a wrong folder) is refused before
    anything is made at --root: no empty archive left behind to be mistaken for a real one."""
    from typer.testing import CliRunner

    from hsdt.cli import app

    folder = tmp_path / "a-folder.pdf"
    folder.mkdir()
    files = [tmp_path / "missing-1.pdf", folder]
    root = tmp_path / "kho"
    r = CliRunner().invoke(app, ["archive", "ingest", *map(str, files), "--root", str(root),
                                 "--pki", str(world.pki.workdir)])
    said = " ".join(r.output.split())
    assert r.exit_code == 2, r.output  # bad input, as for one file that cannot be read
    assert "Không đọc được tệp nào trong 2 tệp đã cho" in said and str(files[0]) in said
    assert "Không có gì được lưu." in said
    assert not root.exists()


def test_cli_public_answer_and_transfer(world: World, two_sealed: list[bytes], tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from hsdt.cli import app

    root, pki = tmp_path / "kho", ["--pki", str(world.pki.workdir)]
    runner = CliRunner()
    f = tmp_path / "r.pdf"
    f.write_bytes(two_sealed[0])
    assert runner.invoke(app, ["archive", "ingest", str(f), "--root", str(root), *pki]).exit_code == 0
    record = world.records[0]
    r = runner.invoke(app, ["verify", "--public", "--root", str(root), "--record-id",
                            record.record_id, "--json", *pki])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output)
    assert answer["authentic"] and answer["status"] == "current"
    r = runner.invoke(app, ["verify", "--public", "--root", str(root), "--record-id",
                            record.record_id, *pki])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and f"Năm học: {record.bundle.school_year}" in said
    assert "Loại hồ sơ: Học bạ THCS" in said and f"Đơn vị cấp: {record.bundle.school.name}" in said
    for secret in (record.student.code, record.student.full_name, record.student.date_of_birth):
        assert secret not in r.output
    for secret in (record.student.code, record.student.full_name, record.student.date_of_birth):
        assert secret not in r.output
    altered = tmp_path / "altered.pdf"
    altered.write_bytes(two_sealed[0] + b"\n")  # not byte-identical to the archived copy
    r = runner.invoke(app, ["verify", str(altered), "--public", "--root", str(root), "--json", *pki])
    assert r.exit_code == 1 and json.loads(r.output)["status"] == "not_authentic"
    r = runner.invoke(app, ["archive", "get", record.record_id, "--root", str(root),
                            "--out", str(tmp_path / "out"), *pki])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "out" / f"{record.record_id}.report.json").read_text())
    assert report["archive"]["log_index"] == 0 and report["archive"]["signed_tree_head"]
    assert (tmp_path / "out" / f"{record.record_id}.report.pdf").read_bytes().startswith(b"%PDF")
    package = tmp_path / "chuyen-truong.zip"
    r = runner.invoke(app, ["transfer", "issue", "--student", record.student.code, "--root", str(root),
                            "--out", str(package), *pki])
    assert r.exit_code == 0, r.output
    assert record.record_id in r.output and "hsdt transfer verify chuyen-truong.zip" in r.output
    r = runner.invoke(app, ["transfer", "verify", str(package), *pki])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and "Gói hồ sơ chuyển trường HỢP LỆ: 1 hồ sơ." in said
    # what the receiving school needs to read: whose records, from which school, sealed by whom
    assert f"Học sinh: mã định danh {record.student.code}" in said
    assert f"Trường cấp: {world.pki.school_name} ({world.pki.school_code})" in said
    assert f"✓ {record.record_id} — năm học {record.bundle.school_year}" in said and ": hợp lệ" in said
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 1
    package.write_bytes(bytes(data))
    r = runner.invoke(app, ["transfer", "verify", str(package), *pki])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and "KHÔNG HỢP LỆ" in said and f"✗ {record.record_id}" in said


def test_cli_ingests_several_files_at_once(world: World, two_sealed: list[bytes],
                                           tmp_path: Path) -> None:
    """`hsdt archive ingest A B C`: verified side by side, each file answered on its own; a
    file refused does not keep the others out, and the exit code says something was."""
    from typer.testing import CliRunner

    from hsdt.archive.index import ArchiveIndex
    from hsdt.cli import app

    files = []
    for i, pdf in enumerate([two_sealed[0], b"%PDF-1.7 not a record", two_sealed[1]]):
        files.append(tmp_path / f"r{i}.pdf")
        files[-1].write_bytes(pdf)
    root, pki = tmp_path / "kho", ["--pki", str(world.pki.workdir)]
    r = CliRunner().invoke(app, ["archive", "ingest", *map(str, files), "--root", str(root),
                                 "--processes", "2", *pki])
    assert r.exit_code == 1, r.output
    assert "2/3 hồ sơ đã vào kho" in r.output and f"✗ {files[1]}" in r.output
    assert sorted(e.sha256 for e in ArchiveIndex(root / "index.sqlite3").search()) == sorted(
        sha256_hex(p) for p in two_sealed)
    again = CliRunner().invoke(app, ["archive", "ingest", str(files[0]), str(files[2]),
                                     "--root", str(root), *pki])
    assert again.exit_code == 0 and "2/2 hồ sơ đã vào kho" in again.output  # stored once
    assert len(ArchiveIndex(root / "index.sqlite3").search()) == 2
