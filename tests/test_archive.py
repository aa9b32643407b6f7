"""The local WORM archive: verify-then-store, content-addressed keys, no overwrite, no delete."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import World

from hsdt.archive.ingest import Archive
from hsdt.archive.store import LocalWormStore, ObjectStore
from hsdt.domain.canonical import sha256_hex
from hsdt.domain.errors import ArchiveError
from hsdt.workflow import render


def _archive(world: World, root: Path) -> Archive:
    return Archive(LocalWormStore(root), root, world.verifier(online=False))


def test_ingest_verifies_and_stores_under_content_key(world: World, sealed: bytes,
                                                      tmp_path: Path) -> None:
    archive = _archive(world, tmp_path)
    entry, report = archive.ingest(sealed)
    assert report.valid
    assert entry.key.endswith(f"{sha256_hex(sealed)}.pdf") and entry.sha256 == sha256_hex(sealed)
    assert entry.student_code == world.records[0].student.code
    assert entry.retain_until.startswith("9999")
    assert archive.get(entry) == sealed
    again, _ = archive.ingest(sealed)  # redelivery: same bytes, same entry, one index row
    assert again == entry and len(archive.entries()) == 1 and archive.log.size == 1


def test_ingest_refuses_an_unsigned_record(world: World, tmp_path: Path) -> None:
    archive = _archive(world, tmp_path)
    with pytest.raises(ArchiveError, match="chưa hợp lệ"):
        archive.ingest(render(world.records[1]))
    assert archive.entries() == [] and archive.log.size == 0
    assert not list((tmp_path / "objects").rglob("*.pdf"))


def test_store_refuses_overwrite_and_has_no_delete(tmp_path: Path) -> None:
    store = LocalWormStore(tmp_path)
    until = datetime(2126, 1, 1, tzinfo=UTC)
    store.put_locked("records/a.pdf", b"first", retain_until=until)
    with pytest.raises(ArchiveError) as info:
        store.put_locked("records/a.pdf", b"second", retain_until=until)
    assert info.value.code == "overwrite_refused"
    assert store.get("records/a.pdf") == b"first"
    assert store.head("records/a.pdf").retain_until == "2126-01-01T00:00:00Z"
    for name in ("delete", "delete_object", "remove", "put", "overwrite"):
        assert not hasattr(store, name)
        assert name not in ObjectStore.__dict__
    obj = tmp_path / "objects" / "records" / "a.pdf"
    assert not os.access(obj, os.W_OK) or os.geteuid() == 0
    assert oct(obj.stat().st_mode & 0o777) == "0o444"


def test_a_changed_object_fails_fixity_on_read(tmp_path: Path) -> None:
    store = LocalWormStore(tmp_path)
    store.put_locked("records/b.pdf", b"original", retain_until=datetime(2126, 1, 1, tzinfo=UTC))
    obj = tmp_path / "objects" / "records" / "b.pdf"
    obj.chmod(0o644)
    obj.write_bytes(b"0riginal")  # behind the store's back
    with pytest.raises(ArchiveError) as info:
        store.get("records/b.pdf")
    assert info.value.code == "fixity_failed"
    with pytest.raises(ArchiveError, match="không hợp lệ"):
        store.put_locked("../escape", b"x", retain_until=datetime(2126, 1, 1, tzinfo=UTC))


def test_a_crash_between_object_and_metadata_is_completed_by_the_retry(tmp_path: Path) -> None:
    """Killed after the object was linked but before its metadata: the object is there, the
    key has no metadata. The same bytes again adopt it; other bytes are refused."""
    store = LocalWormStore(tmp_path)
    until = datetime(2126, 1, 1, tzinfo=UTC)
    left = tmp_path / "objects" / "records" / "c.pdf"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"sealed record")  # what the crashed attempt left
    stored = store.put_locked("records/c.pdf", b"sealed record", retain_until=until)
    assert store.get("records/c.pdf") == b"sealed record" and store.head("records/c.pdf") == stored
    assert oct((tmp_path / "objects" / "records" / "c.pdf.meta.json").stat().st_mode & 0o777) == "0o444"

    other = tmp_path / "objects" / "records" / "d.pdf"
    other.write_bytes(b"something else")
    with pytest.raises(ArchiveError) as info:
        store.put_locked("records/d.pdf", b"sealed record", retain_until=until)
    assert info.value.code == "overwrite_refused"
    assert other.read_bytes() == b"something else"
    assert not (tmp_path / "objects" / "records" / "d.pdf.meta.json").exists()
    assert not [p for p in (tmp_path / "objects").rglob("*.tmp")]  # no temporary file left


def test_object_and_metadata_are_fsynced_with_their_directory(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import hsdt.durable

    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(hsdt.durable.os, "fsync", fsync)
    store = LocalWormStore(tmp_path)
    store.put_locked("records/e.pdf", b"durable", retain_until=datetime(2126, 1, 1, tzinfo=UTC))
    folder = str(tmp_path / "objects" / "records")
    files = [p for p in synced if p != folder]
    assert len(files) == 2 and all(Path(p).parent == Path(folder) for p in files)  # object, metadata
    assert synced.count(folder) == 2  # each name made durable
