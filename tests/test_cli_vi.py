"""The command line speaks Vietnamese: help panels and the errors of a mistyped command."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hsdt.cli import app

_ENGLISH = ("Show this message", "No such option", "Missing option", "Missing argument",
            "Invalid value", "Got unexpected", "No such command", "Try '", "Options", "Commands",
            "Usage:", "[OPTIONS]", "COMMAND")


def _said(args: list[str]) -> tuple[int, str]:
    r = CliRunner().invoke(app, args)
    return r.exit_code, " ".join(r.output.split())


@pytest.mark.parametrize("args", [["--help"], ["archive", "--help"], ["archive", "get", "--help"]])
def test_help_is_in_vietnamese(args: list[str]) -> None:
    code, said = _said(args)
    assert code == 0 and "Tuỳ chọn" in said and "Hiện hướng dẫn này rồi thoát." in said
    assert "Cách dùng: root" in said
    assert not [e for e in _ENGLISH if e in said], said
    assert "--install-completion" not in said  # shell completion is not for school PCs


@pytest.mark.parametrize(("args", "expected"), [
    (["archive", "search", "--pki", "x", "--root", "y"],
     "Lệnh «root archive search» không có tuỳ chọn --pki. Có phải là --kind?"),
    (["archive", "get", "--root", "kho", "--out", "ra"],
     "Thiếu đối số 'MÃ_HỒ_SƠ' của lệnh «root archive get»."),
    (["archive", "get", "x", "--out", "ra"],
     "Thiếu tuỳ chọn bắt buộc '--root' của lệnh «root archive get»."),
    (["archive", "ingest", "a.pdf", "--root", "kho", "--processes", "hai"],
     "Giá trị không hợp lệ cho '--processes': cần một số nguyên."),
    (["verify", "a.pdf", "b.pdf"], "Lệnh «root verify» không nhận thêm đối số: b.pdf."),
    (["archive", "xoa"], "Không có lệnh 'xoa'."),
], ids=["no_such_option", "missing_argument", "missing_option", "bad_value", "extra_argument",
        "no_such_command"])
def test_a_mistyped_command_is_told_in_vietnamese(args: list[str], expected: str) -> None:
    code, said = _said(args)
    assert code == 2, said  # Typer's exit code for usage errors, unchanged
    assert expected in said and "Lỗi" in said and "để biết cách dùng" in said
    assert "Cách dùng: root" in said
    assert not [e for e in _ENGLISH if e in said], said


def test_the_installed_command_says_it_too() -> None:
    """Through the real entry point, on standard error, as a clerk's terminal shows it."""
    r = subprocess.run([sys.executable, "-m", "hsdt.cli", "archive", "search", "--pki", "x"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert "không có tuỳ chọn --pki" in " ".join(r.stderr.split()), r.stderr
