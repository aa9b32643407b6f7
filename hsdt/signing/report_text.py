"""The verification report as Vietnamese text for people (the JSON form is the same data).

The wording helpers here (times in Asia/Ho_Chi_Minh, names of modification levels, roles,
revocation evidence) are shared with :mod:`hsdt.signing.report_html`, so that the CLI, the
HTML page and the PDF say the same thing in the same words.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from hsdt.domain.plans import ROLE_TITLES, Role
from hsdt.signing.verification import (
    ArchiveEvidence,
    CertificateInfo,
    RevocationEvidence,
    VerificationReport,
)

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
LEVEL_VI = {"NONE": "không có", "LTA_UPDATES": "chỉ dữ liệu xác minh dài hạn",
            "FORM_FILLING": "chỉ điền biểu mẫu và ký tiếp", "ANNOTATIONS": "thêm chú thích",
            "OTHER": "sửa nội dung", "UNKNOWN": "không xác định"}
COVERAGE_VI = {"ENTIRE_FILE": "toàn bộ tệp", "ENTIRE_REVISION": "toàn bộ phiên bản tại lúc ký",
               "CONTIGUOUS_BLOCK_FROM_START": "chỉ một phần đầu tệp", "UNCLEAR": "không rõ"}
REVOCATION_STATUS_VI = {"good": "chưa bị thu hồi", "revoked": "ĐÃ BỊ THU HỒI",
                        "unknown": "không rõ"}
SOURCE_VI = {"dss": "lưu trong hồ sơ (DSS)", "online": "tra cứu trực tuyến", "none": "không có"}
VERDICT_VI = {True: "HỢP LỆ", False: "KHÔNG HỢP LỆ"}
VERDICT_WORDS = {"valid": "HỢP LỆ", "invalid": "KHÔNG HỢP LỆ",
                 "indeterminate": "CHƯA KẾT LUẬN ĐƯỢC — CẦN GIA HẠN BẰNG CHỨNG"}


def yes(v: bool | None) -> str:
    return "có" if v else ("không rõ" if v is None else "KHÔNG")


def _in_vietnam(iso: str) -> datetime:
    t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    try:
        return t.astimezone(VN_TZ)
    except OverflowError:  # 9999-12-31T23:59:59Z, the archive's "permanent", has no GMT+7 form
        return t


def local_time(iso: str | None) -> str:
    """An ISO 8601 instant as Vietnamese readers expect it: dd/mm/yyyy hh:mm:ss, GMT+7."""
    if not iso:
        return "không có"
    return _in_vietnam(iso).strftime("%d/%m/%Y %H:%M:%S (GMT+7)")


def short_time(iso: str | None) -> str:
    """Like :func:`local_time` without the zone, for tables whose heading names it."""
    return _in_vietnam(iso).strftime("%d/%m/%Y %H:%M:%S") if iso else "không có"


def local_date(iso: str | None) -> str:
    if not iso:
        return "không có"
    t = _in_vietnam(iso)
    return t.strftime("%d/%m/%Y") + (" (vĩnh viễn)" if t.year == 9999 else "")


def role_title(role: str | None) -> str:
    try:
        return ROLE_TITLES[Role(role)] if role else "ngoài kế hoạch ký"
    except ValueError:
        return role or "ngoài kế hoạch ký"


def cert_line(c: CertificateInfo) -> str:
    anchor = ", gốc tin cậy" if c.trust_anchor else ""
    return (f"{c.subject_cn} (số sê-ri {c.serial}, cấp bởi {c.issuer_cn}, hiệu lực "
            f"{local_date(c.not_before)}–{local_date(c.not_after)}{anchor})")


def revocation_line(e: RevocationEvidence) -> str:
    """One piece of revocation evidence in a sentence: what, from whom, when, and verdict."""
    if e.kind == "ocsp":
        what = f"OCSP của «{e.issuer}», phát hành {local_time(e.produced_at)}"
    else:
        what = (f"CRL của «{e.issuer}», cập nhật {local_time(e.this_update)}, "
                f"lần sau {local_time(e.next_update)}")
    status = REVOCATION_STATUS_VI[e.status]
    if e.revoked_at:
        status += f" từ {local_time(e.revoked_at)}"
    return f"{e.cert_subject_cn}: {what} — {status}; {SOURCE_VI[e.source]}"


def revocation_summary(items: Sequence[RevocationEvidence]) -> str:
    """All the evidence of one path in a line; the full list is in the HTML and JSON forms."""
    if not items:
        return "không có bằng chứng (OCSP/CRL)"
    ocsp = sum(1 for e in items if e.kind == "ocsp")
    sources = ", ".join(sorted({SOURCE_VI[e.source] for e in items}))
    verdict = ("tất cả cho biết chưa bị thu hồi" if all(e.status == "good" for e in items)
               else "CÓ bằng chứng thu hồi hoặc không rõ")
    return f"{len(items)} bằng chứng (OCSP {ocsp}, CRL {len(items) - ocsp}), {sources}: {verdict}"


def verification_basis(r: VerificationReport) -> str:
    """How the revocation status was established, in words."""
    if r.network_used:
        return "tra cứu trạng thái thu hồi trực tuyến"
    if r.sealed:
        return "không dùng mạng, theo dữ liệu xác minh (DSS) lưu trong hồ sơ"
    return "không dùng mạng; hồ sơ chưa niêm phong nên chưa kiểm tra được thu hồi"


def fixity_outcome(outcome: str) -> str:
    return {"success": "khớp", "failure": "KHÔNG KHỚP"}.get(outcome, outcome)


def report_text(r: VerificationReport) -> str:
    lines = [
        f"KẾT QUẢ XÁC MINH: {VERDICT_WORDS[r.verdict]}",
        f"Hồ sơ: {r.record_id}",
        f"Loại: {r.plan_title} — học sinh {r.student_name}, năm học {r.school_year}",
    ]
    if r.school_name:
        lines.append(f"Trường: {r.school_name} (mã {r.school_code})")
    lines += [
        f"PDF/A khai báo: {r.pdfa_part or '?'}{(r.pdfa_conformance or '?').lower()}; "
        f"dữ liệu nhúng khớp XMP: {yes(r.data_matches_xmp)}; "
        f"siêu dữ liệu thống nhất: {yes(r.metadata_consistent)}",
        f"Kế hoạch ký hoàn tất: {yes(r.plan_complete)}; niêm phong dài hạn: {yes(r.sealed)}",
    ]
    if r.validation_data is not None and r.validation_data.source == "dss":
        v = r.validation_data
        lines.append(f"Dữ liệu xác minh trong hồ sơ (DSS): {v.dss_certificates} chứng thư, "
                     f"{v.dss_ocsp_responses} phản hồi OCSP, {v.dss_crls} CRL")
    lines += ["", f"Chữ ký ({len(r.signatures)}):"]
    for i, s in enumerate(r.signatures, 1):
        mark = "✓" if s.ok else "✗"
        lines.append(f" {i:>2}. {mark} {s.label or s.field}: {s.signer_name}"
                     f" — {role_title(s.role)}")
        lines.append(f"      thời điểm ký {local_time(s.signing_time)}; nguyên vẹn {yes(s.intact)}; "
                     f"tin cậy {yes(s.trusted)}; dấu thời gian {yes(s.timestamped)}; "
                     f"kiểm tra thu hồi {yes(s.revocation_checked)}; đúng người "
                     f"{yes(s.bound_to_assignee)}; thay đổi sau ký: "
                     f"{LEVEL_VI.get(s.modification_level, s.modification_level)}")
        lines.append(f"      chứng thư SHA-256 {s.cert_sha256}")
        if s.chain:
            lines.append("      chuỗi chứng thư: " + " → ".join(
                c.subject_cn + (" (gốc tin cậy)" if c.trust_anchor else "") for c in s.chain))
        lines.append(f"      thu hồi: {revocation_summary(s.revocation)}")
        lines += [f"      ! {revocation_line(e)}" for e in s.revocation if e.status != "good"]
        if s.timestamp is not None:
            lines.append(f"      dấu thời gian: {s.timestamp.tsa_name}, "
                         f"{local_time(s.timestamp.time)}")
        lines += [f"      ! {p}" for p in s.problems]
    for t in r.archive_timestamps:
        lines.append(f" Dấu thời gian lưu trữ «{t.field}»: {local_time(t.time)}"
                     f"{f' ({t.tsa_name})' if t.tsa_name else ''}; "
                     f"{'hợp lệ' if not t.problems else 'KHÔNG hợp lệ'}")
        lines += [f"      ! {p}" for p in t.problems]
    if r.archive is not None:
        lines += ["", *archive_lines(r.archive)]
    if r.problems:
        lines += ["", "Lý do:"] + [f" - {p}" for p in r.problems]
    lines.append("")
    lines.append(f"Xác minh lúc {local_time(r.verified_at)}, {verification_basis(r)}.")
    return "\n".join(lines)


def archive_lines(a: ArchiveEvidence) -> list[str]:
    out = [f"Lưu trữ: {a.object_key} (phiên bản {a.version_id}), "
           f"giữ không xoá được đến {local_date(a.retain_until)}"]
    if a.fixity:
        last = a.fixity[-1]
        out.append(f" kiểm tra toàn vẹn: {len(a.fixity)} lần, lần cuối {local_time(last.time)} "
                   f"({fixity_outcome(last.outcome)})")
    if a.log_index is not None:
        out.append(f" nhật ký minh bạch: mục #{a.log_index} trong cây {a.tree_size} mục, "
                   f"gốc {a.root_hash}, bằng chứng gồm {len(a.inclusion_proof)} băm")
    return out
