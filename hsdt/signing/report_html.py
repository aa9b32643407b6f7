"""The verification report for people: Vietnamese HTML, and the same page as PDF.

Built for an archivist who opens a record years from now and must decide whether to rely on
it, in the spirit of the EU DSS reports: a *simple report* first (the verdict in words and
colour, one line per aspect checked), then the *detailed report* (every signature with its
certificate path, the revocation evidence, its timestamp and the modification analysis;
the plan, the PDF/A claims, the data lock, and the archive's evidence when present).

The HTML is self-contained (stylesheet inline) so the API can serve it as is; the PDF uses
the bundled Noto Serif (OFL) through ``@font-face`` URLs resolved against the templates
folder, so it looks the same on every machine. The PDF is PDF/A-3b and carries the JSON
report as an associated file: the human and the machine form travel together.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2
import weasyprint

import hsdt
from hsdt.settings import TEMPLATES_DIR
from hsdt.signing.report_text import (
    COVERAGE_VI,
    LEVEL_VI,
    REVOCATION_STATUS_VI,
    SOURCE_VI,
    VERDICT_WORDS,
    fixity_outcome,
    local_date,
    local_time,
    role_title,
    short_time,
    verification_basis,
    yes,
)
from hsdt.signing.verification import VerificationReport

TEMPLATE = "report.html"
STYLESHEET = "report.css"
REPORT_JSON = "verification-report.json"


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(local_time=local_time, short_time=short_time, local_date=local_date,
                       role_title=role_title,
                       yes=yes, fixity=fixity_outcome)
    env.globals.update(LEVEL_VI=LEVEL_VI, COVERAGE_VI=COVERAGE_VI, SOURCE_VI=SOURCE_VI,
                       REVOCATION_STATUS_VI=REVOCATION_STATUS_VI)
    return env


def _aspects(r: VerificationReport) -> list[dict[str, Any]]:
    """The simple report: one line per aspect, each passed or not, with its facts in words."""
    ok_sigs = sum(1 for s in r.signatures if s.ok)
    codes = set(r.codes)
    sealed_at = r.archive_timestamps[-1].time if r.archive_timestamps else None
    seal_ok = not any(t.problems for t in r.archive_timestamps)
    lines = [
        {"name": "Chữ ký số", "ok": bool(r.signatures) and ok_sigs == len(r.signatures),
         "text": f"{ok_sigs}/{len(r.signatures)} chữ ký hợp lệ: nguyên vẹn, chứng thư tin cậy "
                 "và chưa bị thu hồi, có dấu thời gian, đúng người được giao"},
        {"name": "Kế hoạch ký", "ok": r.plan_complete and "plan_order" not in codes,
         "text": ("đủ chữ ký, đúng trình tự" if r.plan_complete and "plan_order" not in codes
                  else "chưa đủ chữ ký" if not r.plan_complete else "sai trình tự ký")},
        {"name": "Niêm phong dài hạn", "ok": r.sealed and seal_ok,
         "text": ("chưa niêm phong" if not r.sealed
                  else f"dấu thời gian lưu trữ lúc {local_time(sealed_at)}"
                  + ("" if seal_ok else " KHÔNG hợp lệ"))},
        {"name": "Khoá dữ liệu", "ok": r.data_matches_xmp,
         "text": ("dữ liệu nhúng khớp mã SHA-256 đã khoá" if r.data_matches_xmp
                  else "dữ liệu nhúng KHÔNG khớp mã đã khoá")},
        {"name": "Định dạng lưu trữ", "ok": (r.pdfa_part, r.pdfa_conformance) == ("3", "B")
         and r.metadata_consistent,
         "text": f"khai báo PDF/A-{r.pdfa_part or '?'}{(r.pdfa_conformance or '?').lower()}, "
                 f"siêu dữ liệu {'thống nhất' if r.metadata_consistent else 'KHÔNG thống nhất'}"},
    ]
    if r.archive is not None:
        a = r.archive
        fixity_ok = all(f.outcome == "success" for f in a.fixity)
        lines.append({"name": "Lưu trữ", "ok": fixity_ok,
                      "text": (f"lưu trữ không xoá được đến {local_date(a.retain_until)}; "
                               f"{len(a.fixity)} lần kiểm tra toàn vẹn"
                               f"{', đều khớp' if fixity_ok else ', có lần KHÔNG khớp'}")})
    return lines


def _summary(r: VerificationReport) -> str:
    if r.valid:
        return (f"Hồ sơ nguyên vẹn và hợp lệ: cả {len(r.signatures)} chữ ký số đều hợp lệ, đúng "
                "người được giao và đúng trình tự của kế hoạch ký; dữ liệu nhúng khớp mã khoá; "
                "hồ sơ đã được niêm phong dài hạn. Có thể dùng hồ sơ này làm căn cứ.")
    if r.verdict == "indeterminate":
        return ("Không phát hiện dấu hiệu giả mạo, nhưng bằng chứng lưu trữ đã hết hạn: cần gia "
                "hạn dấu thời gian lưu trữ trước khi dùng hồ sơ làm căn cứ.")
    return ("Hồ sơ KHÔNG hợp lệ: không được dùng làm căn cứ khi chưa làm rõ các lý do "
            "dưới đây.")


def report_html(report: VerificationReport) -> str:
    """The report as one self-contained Vietnamese HTML page."""
    css = (TEMPLATES_DIR / STYLESHEET).read_text(encoding="utf-8")
    sth = None
    if report.archive is not None and report.archive.signed_tree_head:
        sth = json.dumps(json.loads(report.archive.signed_tree_head), ensure_ascii=False,
                         indent=2, sort_keys=True)
    return _env().get_template(TEMPLATE).render(
        r=report, css=css, verdict=VERDICT_WORDS[report.verdict], summary=_summary(report),
        aspects=_aspects(report), basis=verification_basis(report), sth=sth,
        ok_signatures=sum(1 for s in report.signatures if s.ok),
        producer=f"HSĐT {hsdt.__version__}")


def report_pdf(report: VerificationReport) -> bytes:
    """The same page as PDF/A-3b (A4), with the JSON report attached as its data source."""
    data = json.dumps(report.to_json(), ensure_ascii=False, indent=2, sort_keys=True).encode()
    when = datetime.fromisoformat(report.verified_at).astimezone(UTC).replace(tzinfo=None)
    attachment = weasyprint.Attachment(
        file_obj=io.BytesIO(data), name=REPORT_JSON, relationship="Data",
        description="Báo cáo xác minh dạng JSON (cùng nội dung với trang in)",
        created=when, modified=when)
    html = weasyprint.HTML(string=report_html(report), base_url=TEMPLATES_DIR.as_uri() + "/")
    return html.write_pdf(pdf_variant="pdf/a-3b", attachments=[attachment],
                          pdf_identifier=report.record_id.encode()[:32] or b"hsdt-report")
