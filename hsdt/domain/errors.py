"""Domain errors.

Every error a user can cause carries a Vietnamese message that says what is wrong and how
to fix it, plus a stable machine code, so that the CLI, the API and the workers report the
same thing in the same words.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

# What the operating system said, in the words the rest of the message uses.
_OS_REASONS = {
    errno.ENOENT: "không có tệp hay thư mục này",
    errno.EACCES: "không có quyền truy cập",
    errno.EPERM: "không được phép",
    errno.EISDIR: "đây là một thư mục, không phải tệp",
    errno.ENOTDIR: "một phần của đường dẫn không phải thư mục",
    errno.ENOSPC: "ổ đĩa đã đầy",
    errno.EROFS: "ổ đĩa chỉ cho đọc",
}


def os_reason(exc: OSError) -> str:
    """Why a file could not be used, in Vietnamese (the system's own words for rarer cases)."""
    if exc.errno in _OS_REASONS:
        return _OS_REASONS[exc.errno]
    return exc.strerror or str(exc)


class HsdtError(Exception):
    """Base of every error the service reports to a person."""

    code: str = "hsdt_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a bundle, located precisely enough for a clerk to find it."""

    field: str
    message: str
    student_code: str | None = None
    student_name: str | None = None
    subject: str | None = None

    def describe(self) -> str:
        where: list[str] = []
        if self.student_code or self.student_name:
            who = self.student_name or ""
            if self.student_code:
                who = f"{who} (mã {self.student_code})".strip()
            where.append(f"học sinh {who}")
        if self.subject:
            where.append(f"môn {self.subject}")
        where.append(f"trường «{self.field}»")
        return f"{', '.join(where)}: {self.message}"


@dataclass
class BundleRejected(HsdtError):
    """A term-data bundle failed its schema or rule checks; nothing was written."""

    problems: list[Problem] = field(default_factory=list)
    code: str = "bundle_rejected"

    def __post_init__(self) -> None:
        lines = [f"Dữ liệu bị từ chối ({len(self.problems)} lỗi), không ghi gì:"]
        lines += [f"  - {p.describe()}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  … và {len(self.problems) - 50} lỗi khác")
        super().__init__("\n".join(lines), code=self.code)


class SigningRefused(HsdtError):
    """The signing plan or the certificate policy forbids this signature."""

    code = "signing_refused"


class ArchiveError(HsdtError):
    """The archive refused an operation (overwrite, unknown record, fixity failure)."""

    code = "archive_error"


class UnusableInput(HsdtError):
    """The input is not something we can read at all (not a PDF, not JSON, not UTF-8)."""

    code = "unusable_input"
