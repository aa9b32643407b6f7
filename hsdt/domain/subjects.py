"""The subject lists of the 2018 general-education programme, per school level.

Thông tư 22/2021 assesses some subjects by score and others by comment (Đạt / Chưa đạt);
the minimum number of regular assessments (ĐĐGtx) per term depends on the periods a year.
Kept as data so a province that differs can change one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Assessment(StrEnum):
    SCORE = "score"  # đánh giá bằng nhận xét kết hợp với điểm số
    COMMENT = "comment"  # đánh giá bằng nhận xét (Đạt / Chưa đạt)


@dataclass(frozen=True)
class Subject:
    code: str
    name: str
    assessment: Assessment
    min_regular: int = 0  # số ĐĐGtx tối thiểu mỗi học kì (môn tính điểm)


_S, _C = Assessment.SCORE, Assessment.COMMENT

THCS_SUBJECTS: tuple[Subject, ...] = (
    Subject("NGU_VAN", "Ngữ văn", _S, 4),
    Subject("TOAN", "Toán", _S, 4),
    Subject("NGOAI_NGU", "Ngoại ngữ 1 (Tiếng Anh)", _S, 4),
    Subject("GDCD", "Giáo dục công dân", _S, 2),
    Subject("LS_DL", "Lịch sử và Địa lí", _S, 4),
    Subject("KHTN", "Khoa học tự nhiên", _S, 4),
    Subject("CONG_NGHE", "Công nghệ", _S, 2),
    Subject("TIN_HOC", "Tin học", _S, 2),
    Subject("GDTC", "Giáo dục thể chất", _C),
    Subject("NGHE_THUAT", "Nghệ thuật (Âm nhạc, Mĩ thuật)", _C),
    Subject("HDTN_HN", "Hoạt động trải nghiệm, hướng nghiệp", _C),
    Subject("GDDP", "Nội dung giáo dục của địa phương", _C),
)

THPT_SUBJECTS: tuple[Subject, ...] = (
    Subject("NGU_VAN", "Ngữ văn", _S, 4),
    Subject("TOAN", "Toán", _S, 4),
    Subject("NGOAI_NGU", "Ngoại ngữ 1 (Tiếng Anh)", _S, 4),
    Subject("LICH_SU", "Lịch sử", _S, 3),
    Subject("VAT_LI", "Vật lí", _S, 4),
    Subject("HOA_HOC", "Hoá học", _S, 4),
    Subject("SINH_HOC", "Sinh học", _S, 4),
    Subject("DIA_LI", "Địa lí", _S, 4),
    Subject("GDKT_PL", "Giáo dục kinh tế và pháp luật", _S, 4),
    Subject("TIN_HOC", "Tin học", _S, 4),
    Subject("CONG_NGHE", "Công nghệ", _S, 4),
    Subject("GDQP_AN", "Giáo dục quốc phòng và an ninh", _S, 2),
    Subject("GDTC", "Giáo dục thể chất", _C),
    Subject("HDTN_HN", "Hoạt động trải nghiệm, hướng nghiệp", _C),
    Subject("GDDP", "Nội dung giáo dục của địa phương", _C),
)

CATALOG: dict[str, dict[str, Subject]] = {
    "THCS": {s.code: s for s in THCS_SUBJECTS},
    "THPT": {s.code: s for s in THPT_SUBJECTS},
}

GRADES: dict[str, range] = {"THCS": range(6, 10), "THPT": range(10, 13)}


def subjects_for(level: str) -> dict[str, Subject]:
    return CATALOG[level]
