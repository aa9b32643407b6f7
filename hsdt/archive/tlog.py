"""Append-only Merkle transparency log of archival events (RFC 9162 style).

Every ingest, supersede and renewal is appended here, so that a record removed, swapped or
back-dated behind the service's back is detectable: the log signs tree heads (size, root,
time), and anyone holding an earlier tree head can ask for a consistency proof that the
current log only *added* to it, or an inclusion proof that an event is in it. The proofs are
checked by pure functions (:func:`verify_inclusion`, :func:`verify_consistency`,
:func:`verify_tree_head`) that need no log object, only a tree head and a public key — that is
what a Sở or an auditor runs on their own copies.

Layout of a log directory (all files append-only; integers big-endian)::

    log.json          format, version, log id (written once)
    entries.bin       the entries, concatenated
    entries.idx       8 bytes per entry: the end offset of entry i in entries.bin
    hashes.bin        32 bytes per complete subtree, in the order appends complete them
                      (leaf i, then each subtree leaf i completes, lowest first: see _merkle)
    heads.jsonl       the signed tree heads the log issued, one JSON object a line
    recoveries.jsonl  a line for every torn write truncated on open (forensics)
    lock              flock(2) target serialising writers across processes

Because a complete subtree never changes once written, any inclusion proof, consistency
proof or historical root reads O(log n) stored hashes and hashes O(log n) nodes of the ragged
right edge; appending writes 1 + (trailing one bits of the index) hashes, amortised 2.

Crash safety. ``entries.idx`` is the commit record: an append writes the entry and its hashes,
fsyncs them, then writes and fsyncs the index record. The committed size is therefore
``len(entries.idx) // 8``; bytes of any file beyond what that size implies are a torn write,
truncated (and noted in ``recoveries.jsonl``) before the next append and on open — never
taken as an entry. A file *shorter* than the committed size needs is damage, not a torn
write: the log refuses to append and :meth:`TransparencyLog.check_integrity` reports it.

Tree-head signature input (Ed25519 over these bytes, see :func:`tree_head_signing_input`)::

    b"HSDT-TLOG-STH-V1\\n"                  17 bytes: domain separation from other signatures
    uint16  length of log id in UTF-8 || log id
    uint64  tree size
    uint64  timestamp, milliseconds since 1970-01-01T00:00:00Z
    32 bytes root hash
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import struct
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hsdt.archive._merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_path,
    inclusion_path,
    leaf_hash,
    locate_stored_hash,
    node_hash,
    stored_hash_count,
    stored_hash_index,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)
from hsdt.domain.errors import ArchiveError
from hsdt.durable import fsync_dir

__all__ = [
    "EMPTY_ROOT",
    "IntegrityProblem",
    "IntegrityReport",
    "LogRangeError",
    "Recovery",
    "SignedTreeHead",
    "TransparencyLog",
    "TreeHeadError",
    "leaf_hash",
    "node_hash",
    "parse_tree_heads",
    "tree_head_signing_input",
    "verify_consistency",
    "verify_inclusion",
    "verify_tree_head",
]

_log = logging.getLogger(__name__)

FORMAT = "hsdt-tlog"
FORMAT_VERSION = 1
STH_DOMAIN = b"HSDT-TLOG-STH-V1\n"
_META, _DATA, _INDEX, _HASHES = "log.json", "entries.bin", "entries.idx", "hashes.bin"
_HEADS, _RECOVERIES, _LOCK = "heads.jsonl", "recoveries.jsonl", "lock"
_OFF, _TWO_OFF = struct.Struct(">Q"), struct.Struct(">QQ")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHECK_CHUNK = 4096  # entries hashed per read while re-checking the whole log


class LogRangeError(ArchiveError, IndexError):
    """An index or tree size outside the log (an IndexError too, for ordinary callers)."""

    code = "tlog_range"


class TreeHeadError(ArchiveError, ValueError):
    """A tree head that is not well formed (wrong field, type, length or JSON)."""

    code = "bad_tree_head"


def _corrupt(message: str) -> ArchiveError:
    return ArchiveError(message, code="tlog_corrupt")


# -- signed tree heads ---------------------------------------------------------------------

def tree_head_signing_input(log_id: str, size: int, timestamp_ms: int, root_hash: bytes) -> bytes:
    """The canonical bytes an STH signature covers (layout in the module docstring).

    Fixed-width integers and a length-prefixed log id leave exactly one encoding per tree
    head, and the domain prefix keeps the log key's signatures from meaning anything else.
    """
    lid = log_id.encode("utf-8")
    return (STH_DOMAIN + struct.pack(">H", len(lid)) + lid
            + struct.pack(">QQ", size, timestamp_ms) + root_hash)


@dataclass(frozen=True)
class SignedTreeHead:
    """The log's signed statement "my first ``size`` entries have this root, at this time".

    Kept by auditors: a later tree head must be consistent with every earlier one, and every
    inclusion proof is checked against one. Builds only well-formed heads; whether the
    signature is genuine is :func:`verify_tree_head`'s job.
    """

    log_id: str
    size: int
    root_hash: bytes
    timestamp_ms: int
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.log_id, str) or not self.log_id \
                or len(self.log_id.encode("utf-8")) > 0xFFFF:
            raise TreeHeadError("Mã nhật ký (log_id) của đầu cây phải là chuỗi khác rỗng.")
        for name in ("size", "timestamp_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
                raise TreeHeadError(f"Trường {name} của đầu cây phải là số nguyên không âm.")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise TreeHeadError("Gốc cây (root_hash) phải dài 32 byte.")
        if not isinstance(self.signature, bytes) or len(self.signature) != 64:
            raise TreeHeadError("Chữ ký Ed25519 của đầu cây phải dài 64 byte.")

    @property
    def timestamp(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=self.timestamp_ms)

    def signed_data(self) -> bytes:
        return tree_head_signing_input(self.log_id, self.size, self.timestamp_ms, self.root_hash)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; hashes and signature in lower-case hex."""
        return {"version": FORMAT_VERSION, "log_id": self.log_id, "size": self.size,
                "timestamp_ms": self.timestamp_ms, "root_hash": self.root_hash.hex(),
                "signature": self.signature.hex()}

    def to_json(self) -> str:
        """One line of canonical JSON (sorted keys, no spaces), as kept in ``heads.jsonl``."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Strict: exactly the fields :meth:`to_dict` writes, each of the right type."""
        if not isinstance(data, Mapping):
            raise TreeHeadError("Đầu cây phải là một đối tượng JSON.")
        expected = {"version", "log_id", "size", "timestamp_ms", "root_hash", "signature"}
        if set(data) != expected:
            raise TreeHeadError(f"Đầu cây phải có đúng các trường {sorted(expected)}, "
                                f"có {sorted(data)}.")
        if data["version"] != FORMAT_VERSION or isinstance(data["version"], bool):
            raise TreeHeadError(f"Không hỗ trợ phiên bản đầu cây {data['version']!r}.")
        return cls(log_id=data["log_id"], size=data["size"],
                   root_hash=_unhex(data["root_hash"], "root_hash"),
                   timestamp_ms=data["timestamp_ms"],
                   signature=_unhex(data["signature"], "signature"))

    @classmethod
    def from_json(cls, text: str | bytes | Mapping[str, Any]) -> Self:
        if isinstance(text, Mapping):
            return cls.from_dict(text)
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise TreeHeadError(f"Đầu cây không phải JSON hợp lệ: {exc}.") from None
        return cls.from_dict(data)


def _unhex(value: object, name: str) -> bytes:
    if not isinstance(value, str) or value != value.lower():
        raise TreeHeadError(f"Trường {name} phải là chuỗi hex chữ thường.")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise TreeHeadError(f"Trường {name} không phải hex hợp lệ.") from None


def verify_tree_head(sth: SignedTreeHead, public_key: Ed25519PublicKey) -> bool:
    """Is ``sth`` signed by the holder of ``public_key``? Any doubt is ``False``."""
    if not isinstance(sth, SignedTreeHead) or not isinstance(public_key, Ed25519PublicKey):
        return False
    try:
        public_key.verify(sth.signature, sth.signed_data())
    except InvalidSignature:
        return False
    return True


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """The log's public key as an auditor keeps it (SubjectPublicKeyInfo, PEM)."""
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw key, hex: short enough to read out over the phone to a Sở."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_public_key(pem: bytes, source: str) -> Ed25519PublicKey:
    """A pinned log key read back; anything but an Ed25519 public key is refused by name."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise TreeHeadError(f"{source} không phải khoá công khai PEM.") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TreeHeadError(f"{source} không phải khoá Ed25519 của nhật ký.")
    return key


def parse_tree_heads(text: str) -> list[SignedTreeHead]:
    """Read the JSON Lines of :meth:`TransparencyLog.export_tree_heads` (blank lines skipped)."""
    return [SignedTreeHead.from_json(line) for line in text.splitlines() if line.strip()]


# -- integrity reports ---------------------------------------------------------------------

@dataclass(frozen=True)
class IntegrityProblem:
    """One disagreement found by re-checking the log.

    ``index`` is the first log index affected: the entry whose append wrote the bad bytes
    (or the first entry missing), so that roots and proofs for tree sizes up to ``index``
    are still sound. ``None`` only for a tree-head line that cannot be read at all.
    """

    code: str
    message: str
    index: int | None
    level: int | None = None
    node_index: int | None = None


@dataclass(frozen=True)
class IntegrityReport:
    """Result of :meth:`TransparencyLog.check_integrity`; ``ok`` only if nothing disagreed."""

    size: int
    problems: tuple[IntegrityProblem, ...]
    mismatched_hashes: int = 0
    heads_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_index(self) -> int | None:
        """The lowest affected index; 0 if only an unreadable tree head is wrong."""
        if not self.problems:
            return None
        indexes = [p.index for p in self.problems if p.index is not None]
        return min(indexes) if indexes else 0


@dataclass(frozen=True)
class Recovery:
    """What opening the log had to truncate: bytes past the committed size, per file."""

    size: int
    truncated: tuple[tuple[str, int], ...]
    at: str


# -- the log -------------------------------------------------------------------------------

def _close_fds(fds: list[int]) -> None:
    while fds:
        with contextlib.suppress(OSError):
            os.close(fds.pop())


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _sync_both(a: int, b: int) -> None:
    """fdatasync two files at once: their journal commit is shared, so appends are ~2.5× faster.

    A short-lived thread rather than a pool: nothing to go stale in a forked worker.
    """
    failed: list[OSError] = []

    def sync_a() -> None:
        try:
            os.fdatasync(a)
        except OSError as exc:
            failed.append(exc)

    helper = threading.Thread(target=sync_a, name="tlog-fdatasync", daemon=True)
    helper.start()
    try:
        os.fdatasync(b)
    finally:
        helper.join()
    if failed:
        raise failed[0]


def _now_ms() -> int:
    return (datetime.now(UTC) - _EPOCH) // timedelta(milliseconds=1)


class TransparencyLog:
    """A persistent append-only Merkle log in one directory; see the module docstring.

    Any number of processes may open the same directory; appends are serialised by a
    ``flock`` held only while one is written. The committed size is re-read from the index
    file on each call, so a reader sees other processes' appends as they are committed.
    """

    def __init__(self, path: Path, *, log_id: str, signing_key: Ed25519PrivateKey | None,
                 read_only: bool, fds: dict[str, int]) -> None:
        # Use TransparencyLog.open(); this only assembles an opened log.
        self.path = path
        self.log_id = log_id
        self.read_only = read_only
        self._signing_key = signing_key
        self._data, self._index, self._hashes = fds[_DATA], fds[_INDEX], fds[_HASHES]
        self._lock_fd = fds.get(_LOCK, -1)
        self._mutex = threading.Lock()
        self._fds = list(fds.values())
        self._finalizer = weakref.finalize(self, _close_fds, self._fds)
        self.recovery: Recovery | None = None
        self.damage: str | None = None

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, signing_key: Ed25519PrivateKey | None = None, log_id: str = "hsdt",
             *, read_only: bool = False) -> TransparencyLog:
        """Open the log in ``path``, creating it if need be (unless ``read_only``).

        A torn write left by a crash is truncated here (and recorded). A log created under
        another ``log_id`` is refused: tree heads name the log they belong to.
        """
        path = Path(path)
        if not log_id or len(log_id.encode("utf-8")) > 0xFFFF:
            raise ArchiveError("Mã nhật ký (log_id) không hợp lệ.", code="tlog_bad_id")
        if signing_key is not None and not isinstance(signing_key, Ed25519PrivateKey):
            raise ArchiveError("Khoá ký đầu cây phải là khoá Ed25519.", code="bad_log_key")
        meta = path / _META
        if read_only:
            if not meta.is_file():
                raise ArchiveError(f"{path} không phải thư mục nhật ký minh bạch.", code="tlog_missing")
        else:
            try:
                path.mkdir(parents=True, exist_ok=True)
                if not meta.exists():
                    cls._create(path, log_id)
            except OSError as exc:
                raise ArchiveError(f"Không tạo được nhật ký minh bạch {path}: {exc}.",
                                   code="tlog_unreadable") from exc
        cls._check_meta(path, log_id)
        flags = os.O_RDONLY if read_only else os.O_RDWR | os.O_CREAT
        fds: dict[str, int] = {}
        try:
            for name in (_DATA, _INDEX, _HASHES) + (() if read_only else (_LOCK,)):
                fds[name] = os.open(path / name, flags | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            _close_fds(list(fds.values()))
            raise ArchiveError(f"Không mở được nhật ký minh bạch {path}: {exc}.",
                               code="tlog_unreadable") from exc
        log = cls(path, log_id=log_id, signing_key=signing_key, read_only=read_only, fds=fds)
        if not read_only:
            with log._locked():
                try:
                    log._repair_heads()
                    log.recovery = log._repair_tail()
                except ArchiveError as exc:
                    # Opened anyway so that an audit can say where; appends stay refused.
                    log.damage = exc.message
                    _log.error("transparency log %s is damaged: %s", path, exc.message)
        return log

    @staticmethod
    def _create(path: Path, log_id: str) -> None:
        if any((path / name).exists() for name in (_DATA, _INDEX, _HASHES)):
            raise _corrupt(f"{path} có tệp nhật ký nhưng thiếu {_META}: không nhận làm nhật ký.")
        tmp = path / (_META + ".tmp")
        body = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "log_id": log_id,
                           "hash": "sha256", "created": datetime.now(UTC).isoformat()},
                          ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
        with open(tmp, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        for name in (_DATA, _INDEX, _HASHES, _HEADS, _LOCK):
            os.close(os.open(path / name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        os.replace(tmp, path / _META)
        fsync_dir(path)

    @staticmethod
    def _check_meta(path: Path, log_id: str) -> None:
        try:
            meta = json.loads((path / _META).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise _corrupt(f"Không đọc được {path / _META}: {exc}.") from exc
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise _corrupt(f"{path} không phải nhật ký {FORMAT} phiên bản {FORMAT_VERSION}.")
        if meta.get("log_id") != log_id:
            raise ArchiveError(f"Nhật ký {path} mang mã «{meta.get('log_id')}», không phải "
                               f"«{log_id}».", code="tlog_wrong_id")

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _repair_tail(self) -> Recovery | None:
        """Truncate whatever lies past the committed size; refuse if something is missing.

        Caller holds the lock. Only bytes no index record points to are removed: they belong
        to an append that never returned.
        """
        idx_len = os.fstat(self._index).st_size
        size = idx_len // 8
        want = {_INDEX: size * 8, _DATA: self._end(size - 1) if size else 0,
                _HASHES: stored_hash_count(size) * HASH_SIZE}
        if size >= 2 and self._end(size - 2) > want[_DATA]:
            raise _corrupt(f"Mục lục {_INDEX} lùi lại ở mục #{size - 1}.")
        cut: list[tuple[str, int]] = []
        for name, fd in ((_INDEX, self._index), (_DATA, self._data), (_HASHES, self._hashes)):
            have = os.fstat(fd).st_size
            if have < want[name]:
                raise _corrupt(f"Tệp {name} thiếu {want[name] - have} byte so với {size} mục đã ghi "
                               "(bị cắt hoặc hỏng, không phải một lần ghi dở).")
            if have > want[name]:
                os.ftruncate(fd, want[name])
                os.fsync(fd)
                cut.append((name, have - want[name]))
        if not cut:
            return None
        rec = Recovery(size, tuple(cut), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        _log.warning("transparency log %s: torn write truncated at size %d: %s", self.path, size,
                     ", ".join(f"{n} −{b} B" for n, b in cut))
        line = json.dumps({"at": rec.at, "size": size, "truncated": dict(cut)}, sort_keys=True)
        self._append_line(_RECOVERIES, line)
        return rec

    def _repair_heads(self) -> None:
        """Drop a tree-head line a crash left without its newline."""
        heads = self.path / _HEADS
        with contextlib.suppress(FileNotFoundError), open(heads, "r+b") as fh:
            length = fh.seek(0, os.SEEK_END)
            if not length:
                return
            back = min(length, 64 * 1024)
            fh.seek(length - back)
            tail = fh.read(back)
            if tail.endswith(b"\n"):
                return
            nl = tail.rfind(b"\n")
            if nl < 0 and back < length:
                raise _corrupt(f"Dòng cuối của {_HEADS} dài bất thường.")
            keep = length - back + nl + 1
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
            _log.warning("transparency log %s: torn tree-head line truncated (%d B)",
                         self.path, length - keep)

    def _append_line(self, name: str, line: str) -> None:
        fd = os.open(self.path / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line.encode("utf-8") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Entries committed (durable) so far, by any process."""
        return os.fstat(self._index).st_size // 8

    @property
    def public_key(self) -> Ed25519PublicKey | None:
        """What auditors verify tree heads with (``None`` for a log opened without a key)."""
        return self._signing_key.public_key() if self._signing_key else None

    def _key(self) -> Ed25519PrivateKey:
        if self._signing_key is None:
            raise ArchiveError("Nhật ký được mở không có khoá ký đầu cây.", code="tlog_no_key")
        return self._signing_key

    def require_public_key(self) -> Ed25519PublicKey:
        """The public key, for what is published to auditors: refused for a log without one."""
        return self._key().public_key()

    def _pread(self, fd: int, n: int, offset: int, what: str) -> bytes:
        data = os.pread(fd, n, offset)
        if len(data) != n:
            raise _corrupt(f"Nhật ký minh bạch thiếu dữ liệu: {what} (tệp bị cắt).")
        return data

    def _end(self, i: int) -> int:
        return int(_OFF.unpack(self._pread(self._index, 8, 8 * i, f"vị trí mục #{i}"))[0])

    def _get(self, level: int, index: int) -> bytes:
        return self._pread(self._hashes, HASH_SIZE,
                           HASH_SIZE * stored_hash_index(level, index),
                           f"băm cây con mức {level} số {index}")

    def _check_index(self, index: int, size: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
            raise LogRangeError(f"Nhật ký có {size} mục, không có mục #{index}.")

    def _check_size(self, size: int | None) -> int:
        current = self.size
        if size is None:
            return current
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= current:
            raise LogRangeError(f"Nhật ký có {current} mục, không có cây kích thước {size}.")
        return size

    def entry(self, i: int) -> bytes:
        """The bytes appended as entry ``i``."""
        self._check_index(i, self.size)
        if i == 0:
            start, end = 0, self._end(0)
        else:
            start, end = _TWO_OFF.unpack(self._pread(self._index, 16, 8 * (i - 1), f"vị trí mục #{i}"))
        if end < start:
            raise _corrupt(f"Mục lục {_INDEX} lùi lại ở mục #{i}.")
        return self._pread(self._data, end - start, start, f"nội dung mục #{i}")

    def leaf(self, i: int) -> bytes:
        """The stored leaf hash of entry ``i`` (what an inclusion proof starts from)."""
        self._check_index(i, self.size)
        return self._get(0, i)

    def root(self, size: int | None = None) -> bytes:
        """The tree hash of the first ``size`` entries (default: all), at any past size."""
        return subtree_hash(0, self._check_size(size), self._get)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        size = self._check_size(size)
        self._check_index(index, size)
        return inclusion_path(index, size, self._get)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 proof that the tree of ``new_size`` entries extends that of ``old_size``."""
        new_size = self._check_size(new_size)
        if isinstance(old_size, bool) or not isinstance(old_size, int) or not 0 <= old_size <= new_size:
            raise LogRangeError(f"Không có chứng minh nhất quán từ {old_size} đến {new_size} mục.")
        return consistency_path(old_size, new_size, self._get)

    # -- appending -------------------------------------------------------------------------
    def append(self, entry: bytes) -> int:
        """Append one entry; durable (fsynced) before the index is returned."""
        return self.extend([entry]).start

    def extend(self, entries: Iterable[bytes]) -> range:
        """Append many entries with one fsync per file: the indexes they got.

        The batch is committed by one index write after its entries and hashes are durable,
        so a crash keeps none of it or (if that write was torn) a prefix of whole entries;
        anything else is reported as damage, never taken as entries.
        """
        items = [bytes(e) if isinstance(e, (bytearray, memoryview)) else e for e in entries]
        for e in items:
            if not isinstance(e, bytes):
                raise TypeError(f"log entries are bytes, not {type(e).__name__}")
        if self.read_only:
            raise ArchiveError("Nhật ký được mở chỉ để đọc.", code="tlog_read_only")
        with self._locked():
            self._repair_tail()  # another writer may have crashed mid-append
            self.damage = None
            size = self.size
            data_end = self._end(size - 1) if size else 0
            # The right edge of the tree: complete subtrees of `size`, largest first.
            stack = [self._get(k, (size >> k) - 1)
                     for k in range(size.bit_length() - 1, -1, -1) if size >> k & 1]
            hashes: list[bytes] = []
            ends = bytearray()
            end = data_end
            for i, e in enumerate(items, start=size):
                h = leaf_hash(e)
                hashes.append(h)
                while i & 1:
                    h = node_hash(stack.pop(), h)
                    hashes.append(h)
                    i >>= 1
                stack.append(h)
                end += len(e)
                ends += _OFF.pack(end)
            # 1. entries and hashes, durable; 2. the index record that commits them.
            _pwrite_all(self._data, b"".join(items), data_end)
            _pwrite_all(self._hashes, b"".join(hashes), stored_hash_count(size) * HASH_SIZE)
            _sync_both(self._data, self._hashes)
            _pwrite_all(self._index, bytes(ends), size * 8)
            os.fdatasync(self._index)
        return range(size, size + len(items))

    # -- tree heads ------------------------------------------------------------------------
    def signed_tree_head(self, timestamp: datetime | None = None) -> SignedTreeHead:
        """Sign the current tree head; the first head at each new size is kept in heads.jsonl.

        Signing again at an unchanged size returns a fresh head without growing the file.
        """
        key = self._key()
        if timestamp is None:
            ts = _now_ms()
        elif timestamp.tzinfo is None:
            raise ArchiveError("Thời điểm đầu cây phải có múi giờ (UTC).", code="naive_time")
        else:
            ts = (timestamp - _EPOCH) // timedelta(milliseconds=1)
        size = self.size
        root = self.root(size)
        signature = key.sign(tree_head_signing_input(self.log_id, size, ts, root))
        sth = SignedTreeHead(self.log_id, size, root, ts, signature)
        if not self.read_only:
            with self._locked():
                self._repair_heads()
                last = self._last_head_size()
                if last is None or size > last:
                    self._append_line(_HEADS, sth.to_json())
        return sth

    def _last_head_size(self) -> int | None:
        try:
            with open(self.path / _HEADS, "rb") as fh:
                length = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, length - 4096))
                lines = [ln for ln in fh.read().split(b"\n")[1 if length > 4096 else 0:] if ln.strip()]
        except FileNotFoundError:
            return None
        for line in reversed(lines):
            with contextlib.suppress(ArchiveError, ValueError):
                return SignedTreeHead.from_json(line).size
        return None

    def tree_heads(self) -> list[SignedTreeHead]:
        """Every tree head kept in heads.jsonl, oldest first (a torn last line is skipped)."""
        try:
            text = (self.path / _HEADS).read_text("utf-8")
        except FileNotFoundError:
            return []
        complete = text[: text.rfind("\n") + 1]
        return parse_tree_heads(complete)

    def export_tree_heads(self) -> str:
        """The kept tree heads as JSON Lines, for an auditor to archive and check later."""
        return "".join(h.to_json() + "\n" for h in self.tree_heads())

    # -- integrity -------------------------------------------------------------------------
    def verify_integrity(self) -> int | None:
        """First log index from which the stored log is not sound; ``None`` if all is."""
        return self.check_integrity().first_bad_index

    def check_integrity(self, public_key: Ed25519PublicKey | None = None) -> IntegrityReport:
        """Recompute the whole tree from the stored entries and compare every stored hash.

        Also checks the kept tree heads: each must match the recomputed root at its size and
        carry a valid signature (by ``public_key``, default the log's own key; none checked
        if neither); a head larger than the log means entries were removed from its end.
        Streams the files: memory stays O(log n).
        """
        public_key = public_key or self.public_key
        size = self.size
        problems: list[IntegrityProblem] = []
        heads, head_problems = self._heads_for_check(public_key)
        by_size: dict[int, list[SignedTreeHead]] = {}
        for h in heads:
            if h.size > size:
                head_problems.append(IntegrityProblem(
                    "tree_head_beyond_log", f"Đầu cây đã ký cho {h.size} mục nhưng nhật ký chỉ còn "
                    f"{size}: các mục từ #{size} đã bị xoá.", size))
            else:
                by_size.setdefault(h.size, []).append(h)
        data_len = os.fstat(self._data).st_size
        stack: list[bytes] = []
        position = 0
        mismatched = 0
        good_heads: list[int] = [0]
        bad_heads: list[tuple[SignedTreeHead, int]] = []
        self._check_head_roots(0, EMPTY_ROOT, by_size, good_heads, bad_heads)
        prev = 0
        for a in range(0, size, _CHECK_CHUNK):
            b = min(size, a + _CHECK_CHUNK)
            raw = os.pread(self._index, 8 * (b - a), 8 * a)
            ends = struct.unpack(f">{len(raw) // 8}Q", raw)
            hi = max(prev, min(max(ends, default=prev), data_len))
            buf = os.pread(self._data, hi - prev, prev)
            base = prev
            stream: list[bytes] = []
            stop = None
            for i, end in enumerate(ends, start=a):
                if end < prev:
                    stop = IntegrityProblem("index_backwards", f"Mục lục lùi lại ở mục #{i}.", i)
                elif end > data_len:
                    stop = IntegrityProblem("entry_missing", f"Nội dung mục #{i} đã mất (tệp "
                                            f"{_DATA} bị cắt).", i)
                if stop:
                    break
                h = leaf_hash(buf[prev - base: end - base])
                prev = end
                stream.append(h)
                j = i
                while j & 1:
                    h = node_hash(stack.pop(), h)
                    stream.append(h)
                    j >>= 1
                stack.append(h)
                if i + 1 in by_size:
                    self._check_head_roots(i + 1, _fold(stack), by_size, good_heads, bad_heads)
            joined = b"".join(stream)
            stored = os.pread(self._hashes, len(joined), position * HASH_SIZE)
            if stored != joined:
                for k in range(len(stream)):
                    if stored[k * HASH_SIZE:(k + 1) * HASH_SIZE] == stream[k]:
                        continue
                    mismatched += 1
                    if mismatched <= 20:
                        problems.append(_hash_problem(position + k, len(stored) <= k * HASH_SIZE))
            position += len(stream)
            if stop:
                problems.append(stop)
                break
        for _head, at in bad_heads:
            since = max((s for s in good_heads if s < at), default=0)
            problems.append(IntegrityProblem(
                "tree_head_mismatch", f"Đầu cây đã ký cho {at} mục có gốc khác với nhật ký hiện tại: "
                f"nhật ký đã bị viết lại (trong khoảng mục #{since}–#{at - 1}).", since))
        problems.extend(head_problems)
        problems.sort(key=lambda p: (p.index is None, p.index or 0))
        return IntegrityReport(size, tuple(problems), mismatched, len(heads))

    @staticmethod
    def _check_head_roots(size: int, root: bytes, by_size: dict[int, list[SignedTreeHead]],
                          good: list[int], bad: list[tuple[SignedTreeHead, int]]) -> None:
        for h in by_size.get(size, ()):
            if h.root_hash == root:
                good.append(size)
            else:
                bad.append((h, size))

    def _heads_for_check(self, public_key: Ed25519PublicKey | None
                         ) -> tuple[list[SignedTreeHead], list[IntegrityProblem]]:
        heads: list[SignedTreeHead] = []
        problems: list[IntegrityProblem] = []
        try:
            text = (self.path / _HEADS).read_text("utf-8", "replace")
        except FileNotFoundError:
            return heads, problems
        for n, line in enumerate(text[: text.rfind("\n") + 1].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                h = SignedTreeHead.from_json(line)
            except ArchiveError as exc:
                problems.append(IntegrityProblem("tree_head_unreadable",
                                                 f"Dòng {n} của {_HEADS} không đọc được: {exc.message}",
                                                 None))
                continue
            if h.log_id != self.log_id:
                problems.append(IntegrityProblem("tree_head_foreign", f"Dòng {n} của {_HEADS} là đầu "
                                                 f"cây của nhật ký «{h.log_id}».", None))
            elif public_key is not None and not verify_tree_head(h, public_key):
                problems.append(IntegrityProblem("tree_head_signature", f"Chữ ký đầu cây ở dòng {n} "
                                                 f"của {_HEADS} (kích thước {h.size}) không hợp lệ.",
                                                 None))
            else:
                heads.append(h)
        return heads, problems


def _fold(stack: Sequence[bytes]) -> bytes:
    """Root of a tree from its right-edge complete subtrees, largest first."""
    acc = stack[-1]
    for left in reversed(stack[:-1]):
        acc = node_hash(left, acc)
    return acc


def _hash_problem(position: int, missing: bool) -> IntegrityProblem:
    leaf, level, index = locate_stored_hash(position)
    if missing:
        return IntegrityProblem("hash_missing", f"Thiếu băm của mục #{leaf} trong {_HASHES} (tệp bị cắt).",
                                leaf, level, index)
    if level == 0:
        return IntegrityProblem("entry_altered", f"Mục #{leaf} không khớp băm lá đã lưu: nội dung mục "
                                "hoặc băm lá đã bị sửa.", leaf, 0, leaf)
    return IntegrityProblem("node_altered", f"Băm nút mức {level} số {index} (ghi khi thêm mục #{leaf}) "
                            "không khớp các mục đã lưu.", leaf, level, index)


def truncate_files_for_test(path: Path, size: int) -> None:
    """Cut a log directory back to ``size`` entries, consistently, as an intruder would.

    For tests of detection only: nothing in the service calls it. The kept tree heads above
    ``size`` go too, so that only an auditor's own copy of a tree head can notice.
    """
    path = Path(path)
    idx = path / _INDEX
    raw = idx.read_bytes()
    if not 0 <= size <= len(raw) // 8:
        raise LogRangeError(f"Nhật ký có {len(raw) // 8} mục, không cắt về {size} được.")
    end = _OFF.unpack_from(raw, 8 * (size - 1))[0] if size else 0
    os.truncate(idx, 8 * size)
    os.truncate(path / _DATA, end)
    os.truncate(path / _HASHES, stored_hash_count(size) * HASH_SIZE)
    heads = path / _HEADS
    if heads.exists():
        kept = [ln for ln in heads.read_text("utf-8").splitlines(keepends=True)
                if ln.strip() and json.loads(ln).get("size", 0) <= size]
        heads.write_text("".join(kept), "utf-8")
