"""The archive's scheduled jobs as tasks: fixity sweep and timestamp renewal (run in process,
on a copy of the archive the embedded run produced)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from workerkit import STUDENTS, ClassFixture, open_archive

from hsdt.workers.app import create_app
from hsdt.workers.settings import WorkerSettings


def _copy(runs: dict[str, dict[str, Any]], tmp_path: Path) -> Path:
    src = Path(runs["embedded"]["work"]).parent / "archive"
    dst = tmp_path / "archive"
    shutil.copytree(src, dst)
    return dst


def test_fixity_sweep_checks_every_record_and_resumes(runs: dict[str, dict[str, Any]],
                                                     school_class: ClassFixture,
                                                     tmp_path: Path) -> None:
    root = _copy(runs, tmp_path)
    app = create_app(WorkerSettings())
    pki = str(school_class.pki.workdir)
    first = app.signature("hsdt.fixity_sweep", kwargs={"archive_root": str(root), "pki_dir": pki,
                                                       "limit": 3}).apply_async().get()
    assert first == {"checked": 3, "failures": 0, "completed_sweep": False}
    rest = app.signature("hsdt.fixity_sweep", kwargs={"archive_root": str(root), "pki_dir": pki,
                                                      "limit": 3}).apply_async().get()
    assert rest == {"checked": STUDENTS - 3, "failures": 0, "completed_sweep": True}
    archive = open_archive(root, school_class.pki)
    try:
        events = archive.index.events(type_="fixity check")
        assert len(events) == STUDENTS and {e.outcome for e in events} == {"success"}
    finally:
        archive.close()
        archive.log.close()


def test_renewal_renews_due_records_once(runs: dict[str, dict[str, Any]],
                                         school_class: ClassFixture, tmp_path: Path) -> None:
    root = _copy(runs, tmp_path)
    app = create_app(WorkerSettings())
    pki = str(school_class.pki.workdir)
    # a margin of a century makes every record due today
    sent = app.signature("hsdt.renew_due", kwargs={"archive_root": str(root), "pki_dir": pki,
                                                   "margin_days": 36500, "limit": 2}
                         ).apply_async().get()
    assert sent == {"due": STUDENTS, "sent": 2}
    archive = open_archive(root, school_class.pki)
    try:
        renewed = [e for e in archive.entries() if e.renewed_from]
        assert len(renewed) == 2 and archive.log.size == STUDENTS + 2
        # the same renewal delivered again: found done, nothing added
        again = app.signature("hsdt.renew_record",
                              args=(str(root), pki, renewed[0].renewed_from)).apply_async().get()
        assert again == {"record_id": renewed[0].record_id, "sha256": renewed[0].sha256,
                         "did": "skip"}
        assert archive.log.size == STUDENTS + 2 and len(archive.entries()) == STUDENTS + 2
        for e in renewed:
            assert archive.verifier.verify(archive.get(e)).valid
    finally:
        archive.close()
        archive.log.close()
