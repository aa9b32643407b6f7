"""A realistic, deterministic class for demos and tests.

Scores are drawn per student around an ability level so that the class shows the usual
spread (a few Tốt, many Khá/Đạt, the odd student who must re-test), and every derived value
is computed with the same rules the checker uses, so a sample is always lockable.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

from hsdt.domain.grading import expected_promotion, learning_result, term_average, year_average
from hsdt.domain.schema import (
    Assignment,
    Pass,
    Promotion,
    Rating,
    School,
    SchoolClass,
    ScoreTerm,
    Student,
    SubjectResult,
    Teacher,
    TermBundle,
    TermRatings,
)
from hsdt.domain.subjects import Assessment, subjects_for

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
          "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Giàng", "Lò", "Vàng", "Đinh"]
MIDDLE_M = ["Văn", "Minh", "Đức", "Quang", "Gia", "Hữu", "Thành", "Bảo", "Tuấn", "Công"]
MIDDLE_F = ["Thị", "Ngọc", "Thu", "Thanh", "Khánh", "Phương", "Mỹ", "Diệu", "Hoài", "Bảo"]
GIVEN_M = ["An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hiếu", "Hùng", "Khoa", "Long", "Nam",
           "Phúc", "Quân", "Sơn", "Thắng", "Trung", "Tuấn", "Tùng", "Việt", "Vĩnh", "Lộc", "Kiên"]
GIVEN_F = ["Anh", "Ánh", "Châu", "Giang", "Hà", "Hương", "Huyền", "Lan", "Linh", "Mai", "Ngân",
           "Nga", "Nhung", "Phương", "Quỳnh", "Thảo", "Trang", "Uyên", "Vy", "Yến", "Ngọc", "Thư"]
PLACES = ["Lào Cai", "Sa Pa, Lào Cai", "Bảo Thắng, Lào Cai", "Bát Xát, Lào Cai", "Yên Bái",
          "Hà Nội", "Bắc Hà, Lào Cai", "Văn Bàn, Lào Cai"]
ETHNICITIES = ["Kinh"] * 7 + ["Tày", "Dao", "H'Mông", "Giáy", "Nùng"]
REMARKS = {
    Rating.TOT: ["Chăm ngoan, học tập tích cực, có tinh thần giúp đỡ bạn bè.",
                 "Tự giác, sáng tạo trong học tập; tham gia tốt các hoạt động của lớp."],
    Rating.KHA: ["Có ý thức học tập, cần mạnh dạn phát biểu xây dựng bài hơn.",
                 "Ngoan, lễ phép; cần cố gắng hơn ở các môn tự nhiên."],
    Rating.DAT: ["Cần chú ý hơn trong giờ học và hoàn thành bài tập về nhà đầy đủ.",
                 "Còn rụt rè, cần được quan tâm, động viên thêm."],
    Rating.CHUA_DAT: ["Cần cố gắng nhiều; gia đình và nhà trường phối hợp kèm cặp trong hè."],
}


def _score(rng: random.Random, mean: float) -> Decimal:
    value = min(10.0, max(0.0, rng.gauss(mean, 1.1)))
    return Decimal(str(round(value * 2) / 2)).quantize(Decimal("0.1"))


def _name(rng: random.Random, male: bool) -> str:
    middle = MIDDLE_M if male else MIDDLE_F
    given = GIVEN_M if male else GIVEN_F
    return f"{rng.choice(FAMILY)} {rng.choice(middle)} {rng.choice(given)}"


def _student_code(rng: random.Random, male: bool, born: date) -> str:
    # Mã định danh: 3 chữ số tỉnh (010 Lào Cai), giới tính + thế kỉ, 2 số năm sinh, 6 số ngẫu nhiên.
    century_sex = (2 if male else 3) if born.year >= 2000 else (0 if male else 1)
    return f"010{century_sex}{born.year % 100:02d}{rng.randrange(10**6):06d}"


def sample_bundle(seed: int = 2026, students: int = 40, grade: int = 7,
                  school_year: str = "2025-2026") -> TermBundle:
    rng = random.Random(seed)
    catalog = subjects_for("THCS")
    teachers = [Teacher(id="GV001", full_name="Hoàng Văn Thụ", national_id="010075001234")]
    teachers += [Teacher(id=f"GV{i:03d}", full_name=_name(rng, rng.random() < 0.4))
                 for i in range(2, 12)]
    codes = list(catalog)
    assignments = [Assignment(subject=c, teacher_id=teachers[1 + i % 10].id)
                   for i, c in enumerate(codes)]
    homeroom = next(a.teacher_id for a in assignments if a.subject == "NGU_VAN")
    start_year = int(school_year[:4])
    born_year = start_year - grade - 5
    roster = []
    used: set[str] = set()
    for _ in range(students):
        male = rng.random() < 0.5
        born = date(born_year, 1, 1) + timedelta(days=rng.randrange(365))
        code = _student_code(rng, male, born)
        while code in used:
            code = _student_code(rng, male, born)
        used.add(code)
        roster.append(_make_student(rng, code, _name(rng, male), male, born, catalog))
    roster.sort(key=lambda s: (s.full_name.split()[-1], s.full_name))
    return TermBundle(
        level="THCS",
        school=School(code="LC-THCS-001", name="Trường THCS Lê Quý Đôn",
                      district="Phòng Giáo dục và Đào tạo thành phố Lào Cai",
                      province="Sở Giáo dục và Đào tạo Lào Cai",
                      address="Phường Cốc Lếu, thành phố Lào Cai", principal_id="GV001"),
        school_year=school_year, term="CN",
        class_=SchoolClass(name=f"{grade}A1", grade=grade, homeroom_teacher_id=homeroom),
        teachers=teachers, assignments=assignments, students=roster,
    )


def _make_student(rng: random.Random, code: str, name: str, male: bool, born: date,
                  catalog: dict) -> Student:  # type: ignore[type-arg]
    ability = rng.uniform(4.2, 9.3)
    results, hk1_avgs, year_avgs, hk1_passes, year_passes = [], [], [], [], []
    for subject in catalog.values():
        if subject.assessment is Assessment.SCORE:
            terms = []
            for _ in range(2):
                regular = [_score(rng, ability) for _ in range(subject.min_regular)]
                t = ScoreTerm(regular=regular, midterm=_score(rng, ability),
                              final=_score(rng, ability), average=Decimal(0))
                terms.append(t.model_copy(update={"average": term_average(t)}))
            ya = year_average(terms[0].average, terms[1].average)
            hk1_avgs.append(terms[0].average)
            year_avgs.append(ya)
            results.append(SubjectResult(subject=subject.code, hk1=terms[0], hk2=terms[1],
                                         year_average=ya))
        else:
            fail = ability < 4.6 and rng.random() < 0.5
            r1 = Pass.CHUA_DAT if fail else Pass.DAT
            hk1_passes.append(r1)
            year_passes.append(Pass.DAT)
            results.append(SubjectResult(subject=subject.code, rating_hk1=r1, rating_hk2=Pass.DAT,
                                         rating_year=Pass.DAT))
    learning_hk1 = learning_result(hk1_avgs, hk1_passes)
    learning_year = learning_result(year_avgs, year_passes)
    conduct = Rating.TOT if ability > 6.5 else rng.choice([Rating.TOT, Rating.KHA, Rating.KHA])
    absent = rng.choice([0, 0, 0, 1, 2, 3, 5])
    promotion = expected_promotion(conduct, learning_year, absent) or Promotion.KIEM_TRA_LAI
    awards = []
    if learning_year is Rating.TOT and conduct is Rating.TOT:
        awards.append("Học sinh Giỏi")
    return Student(
        code=code, full_name=name, gender="Nam" if male else "Nữ",
        date_of_birth=born.isoformat(), place_of_birth=rng.choice(PLACES),
        ethnicity=rng.choice(ETHNICITIES),
        results=results,
        conduct=TermRatings(hk1=conduct, hk2=conduct, year=conduct),
        learning=TermRatings(hk1=learning_hk1, hk2=learning_year, year=learning_year),
        days_absent=absent, remark=rng.choice(REMARKS[learning_year]), awards=awards,
        promotion=promotion,
    )
