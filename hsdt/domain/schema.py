"""The term-data bundle: what a school's software hands over for one class and one year.

Pydantic models describe the shape (published as JSON Schema under ``docs/``); the rules
of Thông tư 22/2021 that tie values together live in :mod:`hsdt.domain.grading`, so the
shape and the arithmetic can be read separately.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

STUDENT_CODE_PATTERN = r"^\d{12}$"

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")]
StudentCode = Annotated[str, StringConstraints(pattern=STUDENT_CODE_PATTERN)]
Score = Annotated[Decimal, Field(ge=0, le=10, decimal_places=1)]


class Rating(StrEnum):
    """Kết quả rèn luyện / học tập (Thông tư 22, Điều 8–9)."""

    TOT = "Tốt"
    KHA = "Khá"
    DAT = "Đạt"
    CHUA_DAT = "Chưa đạt"


class Pass(StrEnum):
    """Môn đánh giá bằng nhận xét."""

    DAT = "Đạt"
    CHUA_DAT = "Chưa đạt"


class Promotion(StrEnum):
    LEN_LOP = "Được lên lớp"
    KIEM_TRA_LAI = "Kiểm tra lại trong hè"
    REN_LUYEN_HE = "Rèn luyện trong hè"
    O_LAI = "Không được lên lớp"


class Term(StrEnum):
    HK1 = "HK1"  # học kì I
    CN = "CN"  # cả năm: học kì I, học kì II và cả năm


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class School(_Model):
    code: Code = Field(description="Mã trường trên CSDL ngành")
    name: Name = Field(description="Tên trường, ví dụ «Trường THCS Lê Quý Đôn»")
    district: Name = Field(description="Phòng GD&ĐT quản lý")
    province: Name = Field(description="Sở GD&ĐT")
    address: Name | None = None
    principal_id: Code = Field(description="Mã của hiệu trưởng trong danh sách giáo viên")


class Teacher(_Model):
    id: Code
    full_name: Name
    national_id: Annotated[str, StringConstraints(pattern=r"^\d{12}$")] | None = None


class Assignment(_Model):
    """Which teacher teaches (and signs for) which subject in this class."""

    subject: Code
    teacher_id: Code


class SchoolClass(_Model):
    name: Annotated[str, StringConstraints(pattern=r"^\d{1,2}[A-Z0-9À-Ỹ]{0,6}$")]
    grade: int = Field(ge=1, le=12)
    homeroom_teacher_id: Code


class ScoreTerm(_Model):
    """One term's scores in a subject assessed by score."""

    regular: list[Score] = Field(description="Điểm đánh giá thường xuyên (ĐĐGtx)")
    midterm: Score = Field(description="Điểm đánh giá giữa kì (ĐĐGgk)")
    final: Score = Field(description="Điểm đánh giá cuối kì (ĐĐGck)")
    average: Score = Field(description="Điểm trung bình môn học kì (ĐTBmhk)")


class SubjectResult(_Model):
    """A subject's results: scores for score subjects, ratings for comment subjects."""

    subject: Code
    hk1: ScoreTerm | None = None
    hk2: ScoreTerm | None = None
    year_average: Score | None = Field(default=None, description="ĐTBmcn")
    rating_hk1: Pass | None = None
    rating_hk2: Pass | None = None
    rating_year: Pass | None = None
    remark: Annotated[str, StringConstraints(max_length=500)] | None = None


class TermRatings(_Model):
    hk1: Rating
    hk2: Rating | None = None
    year: Rating | None = None


class Student(_Model):
    code: StudentCode = Field(description="Mã định danh học sinh (12 chữ số)")
    full_name: Name
    gender: Literal["Nam", "Nữ"]
    date_of_birth: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    place_of_birth: Name
    ethnicity: Name = "Kinh"
    address: Name | None = None
    results: list[SubjectResult]
    conduct: TermRatings = Field(description="Kết quả rèn luyện")
    learning: TermRatings = Field(description="Kết quả học tập")
    days_absent: int = Field(ge=0, le=366, description="Tổng số buổi nghỉ học")
    remark: Annotated[str, StringConstraints(max_length=1000)] = Field(
        default="", description="Nhận xét của giáo viên chủ nhiệm"
    )
    awards: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = []
    promotion: Promotion | None = None
    summer_result: Annotated[str, StringConstraints(max_length=300)] | None = None


class TermBundle(_Model):
    """Term data for one class, one school year, one term — the unit that gets locked."""

    schema_version: Literal["1"] = "1"
    level: Literal["THCS", "THPT"]
    school: School
    school_year: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{4}$")]
    term: Term
    class_: SchoolClass = Field(alias="class")
    teachers: list[Teacher]
    assignments: list[Assignment]
    students: list[Student] = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _year_is_consecutive(self) -> TermBundle:
        start, end = (int(x) for x in self.school_year.split("-"))
        if end != start + 1:
            raise ValueError("năm học phải là hai năm liền nhau, ví dụ 2025-2026")
        return self

    def teacher(self, teacher_id: str) -> Teacher:
        for t in self.teachers:
            if t.id == teacher_id:
                return t
        raise KeyError(teacher_id)

    def teacher_for(self, subject: str) -> Teacher:
        for a in self.assignments:
            if a.subject == subject:
                return self.teacher(a.teacher_id)
        raise KeyError(subject)


class DataLock(_Model):
    """Who locked the data and when, and the digest that binds every record to it."""

    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    locked_by: Name
    locked_at: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")]


class LockedBundle(_Model):
    lock: DataLock
    bundle: TermBundle
