"""The verification report as Vietnamese text for people (the JSON form is the same data)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hsdt.signing.verification import VerificationReport

_VN = ZoneInfo("Asia/Ho_Chi_Minh")
_LEVEL = {"NONE": "không có", "LTA_UPDATES": "chỉ dữ liệu xác minh dài hạn",
          "FORM_FILLING": "chỉ điền biểu mẫu và ký tiếp", "ANNOTATIONS": "thêm chú thích",
          "OTHER": "sửa nội dung", "UNKNOWN": "không xác định"}


def _yes(v: bool | None) -> str:
    return "có" if v else ("không rõ" if v is None else "KHÔNG")


def _local(iso: str | None) -> str:
    if not iso:
        return "không có"
    return datetime.fromisoformat(iso).astimezone(_VN).strftime("%d/%m/%Y %H:%M:%S (GMT+7)")


def report_text(r: VerificationReport) -> str:
    lines = [
        f"KẾT QUẢ XÁC MINH: {'HỢP LỆ' if r.valid else 'KHÔNG HỢP LỆ'}",
        f"Hồ sơ: {r.record_id}",
        f"Loại: {r.plan_title} — học sinh {r.student_name}, năm học {r.school_year}",
        f"PDF/A khai báo: {r.pdfa_part or '?'}{(r.pdfa_conformance or '?').lower()}; "
        f"dữ liệu nhúng khớp XMP: {_yes(r.data_matches_xmp)}; "
        f"siêu dữ liệu thống nhất: {_yes(r.metadata_consistent)}",
        f"Kế hoạch ký hoàn tất: {_yes(r.plan_complete)}; niêm phong dài hạn: {_yes(r.sealed)}",
        "",
        f"Chữ ký ({len(r.signatures)}):",
    ]
    for i, s in enumerate(r.signatures, 1):
        mark = "✓" if s.ok else "✗"
        lines.append(f" {i:>2}. {mark} {s.label or s.field}: {s.signer_name}")
        lines.append(f"      thời điểm ký {_local(s.signing_time)}; nguyên vẹn {_yes(s.intact)}; "
                     f"tin cậy {_yes(s.trusted)}; dấu thời gian {_yes(s.timestamped)}; "
                     f"kiểm tra thu hồi {_yes(s.revocation_checked)}; đúng người "
                     f"{_yes(s.bound_to_assignee)}; thay đổi sau ký: "
                     f"{_LEVEL.get(s.modification_level, s.modification_level)}")
        lines.append(f"      chứng thư SHA-256 {s.cert_sha256}")
        lines += [f"      ! {p}" for p in s.problems]
    for t in r.archive_timestamps:
        lines.append(f" Dấu thời gian lưu trữ «{t.field}»: {_local(t.time)}; "
                     f"{'hợp lệ' if not t.problems else 'KHÔNG hợp lệ'}")
        lines += [f"      ! {p}" for p in t.problems]
    if r.problems:
        lines += ["", "Lý do:"] + [f" - {p}" for p in r.problems]
    lines.append("")
    if r.network_used:
        how = "tra cứu trạng thái thu hồi trực tuyến"
    elif r.sealed:
        how = "không dùng mạng, theo dữ liệu xác minh (DSS) lưu trong hồ sơ"
    else:
        how = "không dùng mạng; hồ sơ chưa niêm phong nên chưa kiểm tra được thu hồi"
    lines.append(f"Xác minh lúc {_local(r.verified_at)}, {how}.")
    return "\n".join(lines)
