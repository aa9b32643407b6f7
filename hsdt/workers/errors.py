"""Which failures are worth retrying: the library's exceptions translated at the task boundary.

A task retries only a :class:`TransientError`: something outside the record that may well
answer next time — the TSA, the OCSP responder or CRL server, the object store, a busy
database file, an HSM session. Everything else (a refusal by the signing plan, a record that
does not verify, a bundle that does not parse) fails at once: retrying would give the same
answer, only later.

The mapping lives here, in one place, because the packages below report these faults in
their own terms (documented per rule below); if they grow dedicated codes, only this module
changes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from celery.exceptions import SoftTimeLimitExceeded

from hsdt.domain.errors import ArchiveError, HsdtError, SigningRefused

# SigningRefused codes that describe the outside world, not the record or the certificate:
# - cert_unverifiable: pyhanko-certvalidator found no revocation information — with
#   revocation required, that is what an unreachable OCSP responder / CRL server looks like;
# - token_error: the PKCS#11 token or HSM could not be opened (busy, restarting).
_TRANSIENT_SIGNING = frozenset({"cert_unverifiable", "token_error"})
# ArchiveError codes of the object store's network and service faults (hsdt.archive.s3).
_TRANSIENT_ARCHIVE = frozenset({"storage_unavailable", "storage_error"})
# OSErrors that name a wrong path or permission: a configuration or input error, permanent.
_PERMANENT_OS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class TransientError(HsdtError):
    """A fault outside the record; the task is retried with backoff."""

    code = "transient"

    def __init__(self, message: str, *, cause_code: str | None = None) -> None:
        super().__init__(message)
        self.cause_code = cause_code


def _revinfo_errors() -> tuple[type[BaseException], ...]:
    from pyhanko_certvalidator.errors import InsufficientRevinfoError

    return (InsufficientRevinfoError,)


def _http_errors() -> tuple[type[BaseException], ...]:
    import aiohttp

    return (aiohttp.ClientError,)


@contextlib.contextmanager
def translating() -> Iterator[None]:
    """Run a task body, turning transient library faults into :class:`TransientError`."""
    try:
        yield
    except TransientError:
        raise
    except SigningRefused as exc:
        if exc.code in _TRANSIENT_SIGNING:
            raise TransientError(f"Tạm thời không ký được: {exc.message}", cause_code=exc.code) from exc
        raise
    except ArchiveError as exc:
        if exc.code in _TRANSIENT_ARCHIVE:
            raise TransientError(f"Kho lưu trữ tạm thời lỗi: {exc.message}",
                                 cause_code=exc.code) from exc
        raise
    except HsdtError:
        raise
    except _PERMANENT_OS:
        raise
    except OSError as exc:
        # Includes pyHanko's TimestampRequestError (TSA unreachable), connection resets,
        # timeouts, a full or failing disk.
        raise TransientError(f"Lỗi kết nối hoặc lưu trữ tạm thời: {exc}",
                             cause_code=type(exc).__name__) from exc
    except sqlite3.OperationalError as exc:
        raise TransientError(f"Chỉ mục lưu trữ đang bận: {exc}", cause_code="sqlite_busy") from exc
    except SoftTimeLimitExceeded as exc:
        raise TransientError("Tác vụ chạy quá thời hạn mềm; sẽ thử lại.",
                             cause_code="soft_time_limit") from exc
    except Exception as exc:
        # seal/renew let certvalidator's InsufficientRevinfoError through when the OCSP
        # responder is down; aiohttp's errors are not all OSErrors.
        if isinstance(exc, _revinfo_errors() + _http_errors()):
            raise TransientError(f"Không lấy được thông tin thu hồi hoặc dấu thời gian: {exc}",
                                 cause_code=type(exc).__name__) from exc
        raise
