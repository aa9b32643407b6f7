"""Audits: the store, the index and the transparency log checked against each other.

`audit_log` names every mismatch a century of custody could produce — a record missing,
replaced or with a flipped bit, an index row edited, a log entry removed, an object added
behind the service's back. `fixity_audit` re-reads objects (all, or a sample) and records a
PREMIS-style event for each; it keeps a cursor so a sweep interrupted halfway resumes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hsdt.archive.index import ArchiveEntry
from hsdt.archive.ingest import Archive, record_digest
from hsdt.archive.store import LocalWormStore
from hsdt.archive.tlog import SignedTreeHead, verify_tree_head
from hsdt.domain.errors import ArchiveError
from hsdt.signing.report_text import local_time

_BATCH = 64
# Objects a fixity sweep reads at once (S3 clients are thread-safe; the local store only reads).
FIXITY_READERS = 4
_COMPARED = ("record_id", "kind", "student_code", "school_code", "school_year", "key",
             "version_id", "size", "retain_until")


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    key: str | None = None
    log_index: int | None = None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def audit_log(archive: Archive, kept: Sequence[SignedTreeHead] = (),
              pinned_key: Ed25519PublicKey | None = None) -> list[Finding]:
    """Every disagreement between log, index and store; an empty list means all clean.

    ``kept``: tree heads exported earlier and kept outside the archive (see
    :func:`kept_head_findings`); ``pinned_key``: the log key their keeper pinned.
    """
    out: list[Finding] = []
    log, index = archive.log, archive.index
    bad = log.verify_integrity()  # a full re-hash: done once per audit
    if bad is not None:
        out.append(Finding("log_corrupt", f"Nhật ký minh bạch bị sửa hoặc hỏng từ mục #{bad}.",
                           log_index=bad))
    out += kept_head_findings(archive, kept, pinned_key)
    out += _tree_head_findings(archive, log_intact=bad is None and not out)
    logged: dict[str, int] = {}
    logged_keys: set[tuple[str, str]] = set()
    for i in range(log.size):
        try:
            event = json.loads(log.entry(i))
        except (ArchiveError, ValueError, UnicodeDecodeError):
            out.append(Finding("log_corrupt", f"Mục nhật ký #{i} không đọc được.", log_index=i))
            continue
        e = event.get("entry")
        if not e:
            continue
        logged[e["sha256"]] = i
        logged_keys.add((e["key"], e["version_id"]))
        row = index.by_sha(e["sha256"])
        if row is None:
            out.append(Finding("index_missing", f"Hồ sơ {e['record_id']} có trong nhật ký (#{i}) "
                               "nhưng không có trong chỉ mục.", e["key"], i))
        else:
            changed = [c for c in _COMPARED if str(getattr(row, c)) != str(e[c])]
            if row.log_index != i:
                changed.append("log_index")
            if changed:
                out.append(Finding("index_altered", f"Dòng chỉ mục của {e['record_id']} đã bị sửa "
                                   f"({', '.join(changed)} khác nhật ký #{i}).", e["key"], i))
        out += _object_findings(archive, e["key"], e["version_id"], e["sha256"], i)
    for row in index.all():
        if row.sha256 not in logged:
            out.append(Finding("index_outside_log", f"Chỉ mục có hồ sơ {row.record_id} "
                               f"(#{row.log_index}) mà nhật ký không ghi nhận.", row.key,
                               row.log_index))
    # Records whose ingest began and did not finish: their objects are expected outside the
    # log until the ingest is run again. Still a finding — the journal is in the index, which
    # anyone who can write the index could fill — but one that names the likely cause.
    interrupted = set(index.begun_uploads())
    for key, version in _stored_records(archive):
        if (key, version) in logged_keys:
            continue
        if record_digest(key) in interrupted:
            out.append(Finding("object_ingest_interrupted", f"Kho có đối tượng «{key}» (phiên bản "
                               f"{version}) chưa được ghi trong nhật ký: chỉ mục ghi nhận một lần "
                               "lưu hồ sơ này đã bắt đầu mà chưa xong (bị ngắt, hoặc lỗi khi ghi "
                               "nhật ký). Chạy lại «hsdt archive ingest» với tệp hồ sơ đó để hoàn "
                               "tất; nếu không có lần lưu nào bị ngắt, hãy coi đây là đối tượng "
                               "thêm vào ngoài dịch vụ.", key))
        else:
            out.append(Finding("object_outside_log", f"Kho có đối tượng «{key}» (phiên bản {version}) "
                               "không được ghi trong nhật ký: thêm vào ngoài dịch vụ.", key))
    return out


def _object_findings(archive: Archive, key: str, version: str, digest: str, i: int) -> list[Finding]:
    # One read, one hash: the store checks the bytes against the digest it recorded at write
    # and against the log's, and says which failed.
    try:
        archive.store.get(key, version, sha256=digest)
    except ArchiveError as exc:
        missing = exc.code in ("not_found", "object_missing")
        code = "object_missing" if missing else "object_altered"
        text = ("đã mất khỏi kho" if code == "object_missing" else "đã bị thay đổi (SHA-256 khác)")
        return [Finding(code, f"Đối tượng «{key}» (nhật ký #{i}) {text}.", key, i)]
    return []


def kept_head_findings(archive: Archive, kept: Sequence[SignedTreeHead],
                       pinned_key: Ed25519PublicKey | None = None) -> list[Finding]:
    """Today's log against tree heads kept outside the archive (by a Sở, an auditor).

    The archive's own tree heads, and the last head an audit saw, sit beside the log: whoever
    can rewrite the log can rewrite them too, and sign them again with the log key kept on
    the same server. A copy kept elsewhere is out of their reach. Each head in it must still
    describe a prefix of today's log (the log is here, so its root at the head's size is
    compared directly; an auditor without it asks for a consistency proof instead) and,
    when its keeper pinned the log's public key, be signed by that key, which must still be
    the log's.
    """
    log = archive.log
    out: list[Finding] = []
    current = log.public_key
    if pinned_key is not None and current is not None and \
            current.public_bytes_raw() != pinned_key.public_bytes_raw():
        out.append(Finding("log_key_changed", "Khoá ký đầu cây của nhật ký không còn là khoá đã "
                           "ghim: nhật ký có thể đã được ký lại bằng khoá khác."))
    size = log.size
    for h in kept:
        when = local_time(h.timestamp.isoformat())
        what = f"Đầu cây lưu giữ riêng ở kích thước {h.size} (ký lúc {when})"
        if h.log_id != log.log_id:
            out.append(Finding("kept_head_foreign", f"{what} thuộc nhật ký «{h.log_id}», "
                               f"không phải «{log.log_id}» của kho này."))
        elif pinned_key is not None and not verify_tree_head(h, pinned_key):
            out.append(Finding("kept_head_signature", f"{what} không có chữ ký hợp lệ của khoá đã "
                               "ghim: tệp đầu cây lưu giữ đã bị sửa hoặc lẫn.", log_index=h.size))
        elif (departure := _departure(archive, h.size, h.root_hash)) == "log_truncated":
            out.append(Finding(departure, f"{what}: nhật ký nay chỉ còn {size} mục — các "
                               f"mục từ #{size} đã bị xoá.", log_index=size))
        elif departure == "log_rewritten":
            out.append(Finding(departure, f"{what}: nhật ký hôm nay không nối tiếp đầu cây "
                               "này — lịch sử trước đó đã bị viết lại.", log_index=h.size))
    return out


def _departure(archive: Archive, size: int, root: bytes) -> str | None:
    """How today's log departs from a tree head of ``size`` entries and ``root`` that someone
    saw: ``log_truncated`` (it is shorter now), ``log_rewritten`` (its first ``size``
    entries hash otherwise), or ``None`` (it still extends that head)."""
    if archive.log.size < size:
        return "log_truncated"
    return "log_rewritten" if archive.log.root(size) != root else None


def _tree_head_findings(archive: Archive, *, log_intact: bool) -> list[Finding]:
    """Compare the log with the last tree head the audit saw, then remember the new one."""
    last = archive.index.get_state("audited_tree_head")
    out: list[Finding] = []
    if last:
        seen = json.loads(last)
        size = int(seen["size"])
        departure = _departure(archive, size, bytes.fromhex(seen["root"]))
        if departure == "log_truncated":
            out.append(Finding(departure, f"Nhật ký đã bị cắt: trước có {size} mục, nay còn "
                               f"{archive.log.size}."))
        elif departure == "log_rewritten":
            out.append(Finding(departure, f"Nhật ký đã bị viết lại: gốc cây ở kích thước {size} "
                               "khác bản đã kiểm toán."))
    if not out and log_intact:
        archive.index.set_state("audited_tree_head", json.dumps(
            {"size": archive.log.size, "root": archive.log.root().hex()}))
    return out


def _stored_records(archive: Archive) -> Iterator[tuple[str, str]]:
    store = archive.store
    lister = getattr(store, "list_versions", None)
    if callable(lister):
        for key, version in lister("records/"):
            yield key, version
        return
    if isinstance(store, LocalWormStore):
        base = store.root / "objects"
        for path in sorted((base / "records").rglob("*.pdf")):
            key = str(path.relative_to(base))
            try:
                yield key, store.head(key).version_id
            except ArchiveError:
                yield key, "?"


@dataclass(frozen=True)
class FixityRun:
    checked: int
    failures: list[Finding]
    completed_sweep: bool


def fixity_audit(archive: Archive, *, sample: int | None = None, limit: int | None = None,
                 seed: int | None = None, readers: int = FIXITY_READERS) -> FixityRun:
    """Re-read and re-hash objects; one PREMIS event per object.

    ``sample``: check that many random records. Otherwise sweep in log order from where the
    last sweep stopped (``limit`` bounds one run), so an interrupted sweep resumes.
    ``readers`` objects are read at once: a read is mostly waiting for the store, and
    hashing releases the GIL, so a few threads keep the store busy.
    """
    cursor = int(archive.index.get_state("fixity_cursor") or -1)
    last = archive.index.last_log_index()
    if sample is not None:
        indexes = archive.index.log_indexes()
        todo = archive.index.by_log_indexes(
            random.Random(seed).sample(indexes, min(sample, len(indexes))))
    else:
        todo = archive.index.after(cursor, limit)
    failures: list[Finding] = []
    # Events and the cursor commit in batches: one fsync per batch rather than per object,
    # and an interrupted sweep re-checks at most one batch. A batch commits while the next
    # one is being read.
    batches = [todo[start:start + _BATCH] for start in range(0, len(todo), _BATCH)]
    with ThreadPoolExecutor(max(1, readers), thread_name_prefix="hsdt-fixity") as pool:
        reading: list[Future[list[Finding]]] = []
        for n in range(len(batches) + 1):
            done_reading = reading
            if n < len(batches):
                reading = [pool.submit(_check_entry, archive, e) for e in batches[n]]
            if n:
                failures += _record_fixity(archive, batches[n - 1], done_reading,
                                           cursor=sample is None)
    done = sample is None and (last is None or not todo or todo[-1].log_index == last)
    if done:
        archive.index.set_state("fixity_cursor", "-1")
    return FixityRun(checked=len(todo), failures=failures, completed_sweep=bool(done))


def _check_entry(archive: Archive, e: ArchiveEntry) -> list[Finding]:
    return _object_findings(archive, e.key, e.version_id, e.sha256, e.log_index) + _log_agrees(archive, e)


def _record_fixity(archive: Archive, batch: list[ArchiveEntry], results: list[Future[list[Finding]]],
                   *, cursor: bool) -> list[Finding]:
    """One PREMIS event per object of the batch, and the sweep's cursor, in one transaction."""
    found = [r.result() for r in results]
    with archive.index.transaction() as conn:
        for e, problems in zip(batch, found, strict=True):
            archive.index.add_event(e.sha256, "fixity check", _now(),
                                    "failure" if problems else "success",
                                    "; ".join(p.message for p in problems), conn=conn)
        if cursor:
            archive.index.set_state("fixity_cursor", str(batch[-1].log_index), conn)
    return [p for problems in found for p in problems]


def _log_agrees(archive: Archive, e: ArchiveEntry) -> list[Finding]:
    try:
        event = json.loads(archive.log.entry(e.log_index))
    except (ArchiveError, IndexError, ValueError, KeyError):
        return [Finding("index_outside_log", f"Nhật ký không có mục #{e.log_index} của {e.record_id}.",
                        e.key, e.log_index)]
    if event.get("entry", {}).get("sha256") != e.sha256:
        return [Finding("index_altered", f"Mục nhật ký #{e.log_index} không khớp chỉ mục.",
                        e.key, e.log_index)]
    return []


def findings_json(findings: list[Finding]) -> list[dict[str, object]]:
    return [asdict(f) for f in findings]
