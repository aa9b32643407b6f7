"""What the học bạ template shows, as plain strings, computed from the record's embedded data.

The page is built from ``record.data`` — the very JSON embedded in the PDF — not from the
pydantic models, so what a reader sees and what a verifier extracts cannot drift apart.
Formatting follows the printed forms: decimal comma (8,3), dd/mm/yyyy, Đ / CĐ.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from hsdt.domain.errors import HsdtError
from hsdt.domain.plans import FieldAssignment, ResolvedPlan
from hsdt.domain.records import Record
from hsdt.domain.subjects import subjects_for

# Short forms used in the subject table, with a legend under it (Thông tư 22 forms print Đ/CĐ).
PASS_SHORT = {"Đạt": "Đ", "Chưa đạt": "CĐ"}
_SO_PREFIX = "Sở Giáo dục và Đào tạo"
BLANK = ""


@dataclass(frozen=True)
class SubjectRow:
    code: str
    name: str
    hk1: str
    hk2: str
    year: str
    teacher: str
    field: str | None  # signature field name, None when the plan has no field for the subject


@dataclass(frozen=True)
class SignatureBlock:
    field: str
    assignee_name: str


def score(value: Any) -> str:
    """"8.3" → "8,3"; one decimal always, as the forms print (8 → 8,0)."""
    if value is None or value == "":
        return BLANK
    try:
        d = Decimal(str(value)).quantize(Decimal("0.1"))
    except InvalidOperation:
        raise HsdtError(f"Điểm «{value}» không phải là số.", code="render_data") from None
    return f"{d}".replace(".", ",")


def rating_short(value: Any) -> str:
    if value is None:
        return BLANK
    return PASS_SHORT.get(str(value), str(value))


def date_vn(iso: str) -> str:
    """"2013-11-13" → "13/11/2013"."""
    y, m, d = iso.split("-")
    return f"{d}/{m}/{y}"


def place_of_signing(province: str) -> str:
    """"Sở Giáo dục và Đào tạo Lào Cai" → "Lào Cai"; otherwise dots for the pen."""
    if province.startswith(_SO_PREFIX) and province[len(_SO_PREFIX):].strip():
        return province[len(_SO_PREFIX):].strip()
    return "…………"


def build_view(record: Record, plan: ResolvedPlan) -> dict[str, Any]:
    """The template context: every value already formatted, every signature box named."""
    d = record.data
    st = d["student"]
    teachers = {t["id"]: t["full_name"] for t in d["teachers"]}
    by_subject = {a["subject"]: a["teacher_id"] for a in d["assignments"]}
    fields = {f.name: f for f in plan.fields}
    results = {r["subject"]: r for r in st["results"]}
    catalog = subjects_for(d["level"])

    rows: list[SubjectRow] = []
    used: set[str] = set()
    for code, subject in catalog.items():
        r = results.get(code)
        if r is None:
            continue
        if r.get("hk1") is not None or r.get("year_average") is not None:
            hk1 = score((r.get("hk1") or {}).get("average"))
            hk2 = score((r.get("hk2") or {}).get("average"))
            year = score(r.get("year_average"))
        else:
            hk1 = rating_short(r.get("rating_hk1"))
            hk2 = rating_short(r.get("rating_hk2"))
            year = rating_short(r.get("rating_year"))
        field = _subject_field(fields, code)
        if field:
            used.add(field)
        tid = by_subject.get(code)
        rows.append(SubjectRow(code, subject.name, hk1, hk2, year,
                               teachers.get(tid, BLANK) if tid else BLANK, field))
    unknown = sorted(set(results) - set(catalog))
    if unknown:
        raise HsdtError(f"Môn học không có trong danh mục cấp {d['level']}: {', '.join(unknown)}.",
                        code="render_data")

    def block(name: str) -> SignatureBlock | None:
        f = fields.get(name)
        if f is None:
            return None
        used.add(name)
        return SignatureBlock(field=f.name, assignee_name=f.assignee_name)

    principal_name = teachers.get(d["school"]["principal_id"], BLANK)
    homeroom_name = teachers.get(d["class"]["homeroom_teacher_id"], BLANK)
    view: dict[str, Any] = {
        "record_id": record.record_id,
        "data_sha256": record.data_sha256,
        "school": d["school"],
        "place": place_of_signing(d["school"]["province"]),
        "school_year": d["school_year"].replace("-", " – "),
        "class_name": d["class"]["name"],
        "full_year": d["term"] == "CN",
        "student": {
            "full_name": st["full_name"],
            "code": st["code"],
            "gender": st["gender"],
            "date_of_birth": date_vn(st["date_of_birth"]),
            "place_of_birth": st["place_of_birth"],
            "ethnicity": st.get("ethnicity", BLANK),
            "address": st.get("address"),
        },
        "rows": rows,
        "conduct": _ratings(st.get("conduct")),
        "learning": _ratings(st.get("learning")),
        "days_absent": st.get("days_absent", 0),
        "awards": st.get("awards") or [],
        "promotion": st.get("promotion") or BLANK,
        "summer_result": st.get("summer_result"),
        "remark": st.get("remark") or BLANK,
        "homeroom": block("homeroom"),
        "homeroom_name": homeroom_name,
        "principal": block("principal"),
        "principal_name": principal_name,
        "seal": block("seal"),
    }
    missing = [f.name for f in plan.fields if f.name not in used]
    if missing:
        raise HsdtError(
            "Mẫu học bạ không có ô chữ ký cho trường: " + ", ".join(missing)
            + ". Hãy sửa kế hoạch ký hoặc mẫu in.", code="render_layout")
    return view


def _subject_field(fields: dict[str, FieldAssignment], code: str) -> str | None:
    for f in fields.values():
        if f.subject == code:
            return f.name
    return None


def _ratings(r: dict[str, Any] | None) -> dict[str, str]:
    r = r or {}
    return {k: str(r.get(k) or BLANK) for k in ("hk1", "hk2", "year")}
