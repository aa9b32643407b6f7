"""`hsdt audit log` and fixity: every kind of tampering named; crashes mid-ingest recovered."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import World

from hsdt.archive.audit import audit_log, fixity_audit
from hsdt.archive.ingest import Archive
from hsdt.archive.store import LocalWormStore


@pytest.fixture(scope="module")
def two_sealed(world: World, sealed: bytes) -> list[bytes]:
    rec = world.records[2]
    return [sealed, world.signer.seal(world.sign_until(rec), expected_data_sha256=rec.data_sha256)]


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


_CRASH = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from hsdt.archive import ingest
    from hsdt.archive.store import LocalWormStore
    from hsdt.signing import testpki
    from hsdt.signing.bindings import CertificateBindings
    from hsdt.signing.verification import Verifier
    root, pki_dir, pdf, point = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    pki = testpki.load(pki_dir)
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if point == "after_store":
        ingest.TransparencyLog.append = die
    else:
        ingest.Archive._index_event = die
    archive = ingest.Archive(LocalWormStore(root), root,
                             Verifier(pki.trust_roots(), CertificateBindings(pki.bindings()), online=False))
    archive.ingest(pdf.read_bytes())
""")


@pytest.mark.parametrize("point", ["after_store", "after_log"])
def test_killed_ingest_is_completed_by_the_next_run(world: World, sealed: bytes, tmp_path: Path,
                                                    point: str) -> None:
    pdf = tmp_path / "record.pdf"
    pdf.write_bytes(sealed)
    root = tmp_path / "archive"
    run = subprocess.run([sys.executable, "-c", _CRASH, str(root), str(world.pki.workdir), str(pdf),
                          point], capture_output=True, text=True, timeout=120)
    assert run.returncode == -9, run.stderr  # really killed
    stored = list((root / "objects" / "records").rglob("*.pdf"))
    assert len(stored) == 1
    archive = Archive(LocalWormStore(root), root, world.verifier(online=False))
    entry, _ = archive.ingest(sealed)  # the next run
    assert len(archive.entries()) == 1 and archive.log.size == 1
    assert archive.get(entry) == sealed
    assert len(list((root / "objects" / "records").rglob("*.pdf"))) == 1
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
    r = runner.invoke(app, ["archive", "get", found[0]["record_id"], "--root", str(root),
                            "--out", str(tmp_path / "out"), *pki])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / f"{found[0]['record_id']}.pdf").read_bytes() == two_sealed[0]
    report = json.loads((tmp_path / "out" / f"{found[0]['record_id']}.report.json").read_text())
    assert report["verdict"] == "valid"
    assert report["archive"]["tree_size"] == 2 and report["archive"]["inclusion_proof"]
    r = runner.invoke(app, ["audit", "log", "--root", str(root), *pki])
    assert r.exit_code == 0 and "sạch" in r.output
    obj = root / "objects" / found[0]["key"]
    obj.chmod(0o644)
    obj.unlink()
    r = runner.invoke(app, ["audit", "log", "--root", str(root), *pki])
    assert r.exit_code == 1 and "object_missing" in r.output
    r = runner.invoke(app, ["audit", "fixity", "--root", str(root), *pki])
    assert r.exit_code == 1 and "Đã kiểm tra 2 hồ sơ, 1 lỗi" in " ".join(r.output.split())


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
    r = runner.invoke(app, ["transfer", "verify", str(package), *pki])
    assert r.exit_code == 0 and "Gói hợp lệ" in r.output
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 1
    package.write_bytes(bytes(data))
    r = runner.invoke(app, ["transfer", "verify", str(package), *pki])
    assert r.exit_code == 1 and "✗" in r.output
