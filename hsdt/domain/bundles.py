"""Reading, checking and locking term-data bundles.

A bundle is accepted only whole: the schema and every rule check must pass before anything
is locked or rendered, and every problem found is reported at once with the student,
subject and field it concerns.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from hsdt.domain.canonical import canonical_json, sha256_hex
from hsdt.domain.errors import BundleRejected, Problem, UnusableInput
from hsdt.domain.grading import check_bundle
from hsdt.domain.schema import DataLock, LockedBundle, TermBundle
from hsdt.domain.subjects import CATALOG


def decode_json(raw: bytes, what: str = "tệp dữ liệu") -> Any:
    """Bytes → JSON value, with errors a clerk can act on."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnusableInput(
            f"{what} không phải văn bản UTF-8 (byte lỗi ở vị trí {exc.start}). "
            "Hãy xuất lại dữ liệu với mã hoá UTF-8."
        ) from exc
    try:
        return json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise UnusableInput(
            f"{what} không phải JSON hợp lệ: {exc.msg} (dòng {exc.lineno}, cột {exc.colno})."
        ) from exc


def parse_bundle(data: Any) -> TermBundle:
    """Validate shape and rules; raise :class:`BundleRejected` naming every problem."""
    if isinstance(data, dict) and "bundle" in data and "lock" in data:
        data = data["bundle"]
    try:
        bundle = TermBundle.model_validate(data)
    except ValidationError as exc:
        raise BundleRejected(problems=_problems_from_validation(exc, data)) from None
    problems = check_bundle(bundle)
    if problems:
        raise BundleRejected(problems=problems)
    return bundle


def bundle_digest(bundle: TermBundle) -> str:
    return sha256_hex(canonical_json(bundle_json(bundle)))


def bundle_json(bundle: TermBundle) -> dict[str, Any]:
    return bundle.model_dump(mode="json", by_alias=True, exclude_none=True)


def lock_bundle(bundle: TermBundle, locked_by: str, *, now: datetime | None = None) -> LockedBundle:
    """Lock a checked bundle: from here on its records carry this digest."""
    problems = check_bundle(bundle)
    if problems:
        raise BundleRejected(problems=problems)
    when = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lock = DataLock(sha256=bundle_digest(bundle), locked_by=locked_by, locked_at=when)
    return LockedBundle(lock=lock, bundle=bundle)


def load_locked(data: Any) -> LockedBundle:
    """Read a locked bundle and prove that its lock still matches its content."""
    if not (isinstance(data, dict) and "lock" in data and "bundle" in data):
        raise UnusableInput("Tệp chưa được khoá: cần có «lock» và «bundle».")
    bundle = parse_bundle(data["bundle"])
    try:
        lock = DataLock.model_validate(data["lock"])
    except ValidationError as exc:
        raise BundleRejected(problems=_problems_from_validation(exc, data, prefix="lock")) from None
    actual = bundle_digest(bundle)
    if actual != lock.sha256:
        raise BundleRejected(problems=[Problem(
            "lock.sha256",
            f"dữ liệu đã bị thay đổi sau khi khoá (SHA-256 khoá {lock.sha256[:16]}…, "
            f"dữ liệu hiện tại {actual[:16]}…)",
        )])
    return LockedBundle(lock=lock, bundle=bundle)


def read_bundle_file(raw: bytes, locked_by: str) -> LockedBundle:
    """A bundle file as given to ``hsdt render``: lock it if it is not locked yet."""
    data = decode_json(raw)
    if isinstance(data, dict) and "lock" in data:
        return load_locked(data)
    return lock_bundle(parse_bundle(data), locked_by)


def locked_json(locked: LockedBundle) -> bytes:
    return json.dumps(
        {"lock": locked.lock.model_dump(mode="json"), "bundle": bundle_json(locked.bundle)},
        ensure_ascii=False, indent=2, sort_keys=True,
    ).encode("utf-8") + b"\n"


def _problems_from_validation(exc: ValidationError, data: Any, prefix: str = "") -> list[Problem]:
    problems = []
    students = data.get("students") if isinstance(data, dict) else None
    level = data.get("level") if isinstance(data, dict) else None
    for err in exc.errors():
        loc = list(err["loc"])
        student_code = student_name = subject = None
        if len(loc) >= 2 and loc[0] == "students" and isinstance(loc[1], int):
            st = students[loc[1]] if isinstance(students, list) and loc[1] < len(students) else None
            if isinstance(st, dict):
                student_code = str(st.get("code")) if st.get("code") is not None else None
                student_name = str(st.get("full_name")) if st.get("full_name") else None
                if len(loc) >= 4 and loc[2] == "results" and isinstance(loc[3], int):
                    res = st.get("results")
                    item = res[loc[3]] if isinstance(res, list) and loc[3] < len(res) else None
                    if isinstance(item, dict) and isinstance(item.get("subject"), str):
                        code = item["subject"]
                        subject = CATALOG.get(str(level), {}).get(code)
                        subject = subject.name if subject else code
                    loc = loc[4:]
                else:
                    loc = loc[2:]
        field = ".".join(str(p) for p in loc) or "(gốc)"
        if prefix:
            field = f"{prefix}.{field}"
        problems.append(Problem(field, _message_vi(err), student_code, student_name, subject))
    return problems


_MESSAGES = {
    "missing": "thiếu trường bắt buộc",
    "extra_forbidden": "trường không có trong mẫu dữ liệu (gõ sai tên?)",
    "string_pattern_mismatch": "sai định dạng",
    "enum": "giá trị không được phép",
    "literal_error": "giá trị không được phép",
    "less_than_equal": "vượt quá giá trị tối đa",
    "greater_than_equal": "nhỏ hơn giá trị tối thiểu",
    "decimal_max_places": "chỉ được lấy một chữ số thập phân",
    "decimal_parsing": "không phải là số",
    "int_parsing": "không phải số nguyên",
    "too_short": "danh sách trống",
}


def _message_vi(err: Any) -> str:
    kind = err["type"]
    base = _MESSAGES.get(kind, err["msg"])
    if kind in ("enum", "literal_error"):
        allowed = err.get("ctx", {}).get("expected", "")
        return f"giá trị «{err.get('input')}» không được phép (chỉ nhận {allowed})"
    if kind == "string_pattern_mismatch":
        return f"«{err.get('input')}» sai định dạng (mẫu {err.get('ctx', {}).get('pattern')})"
    if kind == "value_error":
        return str(err.get("ctx", {}).get("error", err["msg"]))
    return base
