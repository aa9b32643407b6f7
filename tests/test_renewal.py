"""Timestamp renewal: a new archive timestamp over the evidence, stored as a new version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import World

from hsdt.archive.audit import audit_log
from hsdt.archive.ingest import Archive
from hsdt.archive.store import LocalWormStore
from hsdt.domain.errors import ArchiveError, SigningRefused
from hsdt.signing.pades import renewal_due
from hsdt.signing.record_state import read_record


def test_renewal_due_follows_the_tsa_certificate(sealed: bytes) -> None:
    tsa_expiry = read_record(sealed).doc_timestamps[-1].signer_cert[
        "tbs_certificate"]["validity"]["not_after"].native
    now = datetime.now(UTC)
    assert renewal_due(sealed, now, timedelta(days=1)) is None
    reason = renewal_due(sealed, now, (tsa_expiry - now) + timedelta(days=1))
    assert reason is not None and "TSA" in reason
    assert renewal_due(sealed, now, timedelta(days=1), frozenset({"sha256"})) is not None


def test_renewed_version_is_stored_beside_the_old(world: World, sealed: bytes,
                                                  tmp_path: Path) -> None:
    archive = Archive(LocalWormStore(tmp_path), tmp_path, world.verifier(online=False))
    old, _ = archive.ingest(sealed)
    new = archive.renew(old, world.signer.renew)
    assert new.renewed_from == old.sha256 and new.record_id == old.record_id
    assert new.revision == old.revision and new.sha256 != old.sha256
    renewed = archive.get(new)
    assert renewed.startswith(sealed)  # an increment: the old bytes are untouched
    report = world.verifier(online=False).verify(renewed)
    assert report.valid, report.problems
    assert [t.field for t in report.archive_timestamps] == ["ArchiveTimestamp1", "ArchiveTimestamp2"]
    assert archive.get(old) == sealed  # the old version stays, locked
    assert archive.current(old.record_id) == new
    assert [e.type for e in archive.index.events(sha256=new.sha256)] == ["migration"]
    assert audit_log(archive) == []


def test_failed_renewal_writes_nothing_and_is_reported(world: World, sealed: bytes,
                                                       tmp_path: Path) -> None:
    archive = Archive(LocalWormStore(tmp_path), tmp_path, world.verifier(online=False))
    old, _ = archive.ingest(sealed)

    def broken(_pdf: bytes) -> bytes:
        raise SigningRefused("TSA không trả lời", code="tsa_unavailable")

    with pytest.raises(ArchiveError, match="TSA không trả lời"):
        archive.renew(old, broken)
    with pytest.raises(ArchiveError):
        archive.renew(old, lambda pdf: pdf[:-50])  # a damaged result never gets stored
    assert len(archive.entries()) == 1 and archive.log.size == 1
    assert [e.outcome for e in archive.index.events(sha256=old.sha256, type_="migration")] == [
        "failure", "failure"]


def test_cli_renews_what_is_due_and_says_what_it_looked_at(world: World, sealed: bytes,
                                                           tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hsdt.cli import app

    archive = Archive(LocalWormStore(tmp_path), tmp_path, world.verifier(online=False))
    old, _ = archive.ingest(sealed)
    args = ["archive", "renew", "--root", str(tmp_path), "--pki", str(world.pki.workdir)]
    r = CliRunner().invoke(app, [*args, "--margin-days", "1"])
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert ("Không có hồ sơ nào đến hạn gia hạn (đã xem 1 hồ sơ; gia hạn khi chứng thư TSA còn "
            "dưới 1 ngày)." in said)
    assert len(archive.entries()) == 1
    r = CliRunner().invoke(app, [*args, "--margin-days", "36500"])  # every TSA expires sooner
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert f"Đã gia hạn {old.record_id} (chứng thư TSA" in said and "Đã gia hạn 1 hồ sơ" in said
    assert [e.renewed_from for e in archive.entries()] == [None, old.sha256]
    assert audit_log(archive) == []
