"""`hsdt demo` runs the whole life of a class with no server and verifies every archived record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hsdt.archive.index import ArchiveIndex


def test_demo_archives_and_verifies_every_record(tmp_path: Path) -> None:
    hsdt = Path(sys.executable).parent / "hsdt"
    out = tmp_path / "demo"
    run = subprocess.run([str(hsdt), "demo", "--students", "3", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "hợp lệ 3/3" in run.stdout
    index = ArchiveIndex(out / "archive" / "index.sqlite3")
    entries = index.all()
    assert len(entries) == 3
    for entry in entries:
        assert (out / "archive" / "objects" / entry.key).is_file()
        report = json.loads((out / "reports" / f"{entry.student_code}.json").read_text())
        assert report["verdict"] == "valid" and report["sealed"] and report["plan_complete"]
    assert len(list((out / "records").glob("*.pdf"))) == 3
    assert (out / "bundle.locked.json").is_file()
