"""Rule checks of Thông tư 22/2021 on a bundle that already has the right shape.

Derived values (term and year averages, learning results, promotion) are recomputed here
and compared with what the school's software sent; a mismatch is reported, never fixed,
because a silently altered grade is the worst outcome there is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from decimal import ROUND_HALF_UP, Decimal

from hsdt.domain.errors import Problem
from hsdt.domain.schema import (
    Pass,
    Promotion,
    Rating,
    ScoreTerm,
    Student,
    SubjectResult,
    Term,
    TermBundle,
)
from hsdt.domain.subjects import GRADES, Assessment, Subject, subjects_for

ONE_DECIMAL = Decimal("0.1")
MAX_DAYS_ABSENT = 45  # Điều 12: nghỉ quá 45 buổi thì không được lên lớp
_PASSING = (Rating.TOT, Rating.KHA, Rating.DAT)


def round_score(value: Decimal) -> Decimal:
    """Round as the form prints: one decimal, half up (8,25 → 8,3)."""
    return value.quantize(ONE_DECIMAL, rounding=ROUND_HALF_UP)


def term_average(term: ScoreTerm) -> Decimal:
    """ĐTBmhk = (ΣĐĐGtx + 2·ĐĐGgk + 3·ĐĐGck) / (số ĐĐGtx + 5)."""
    total = sum(term.regular, Decimal(0)) + 2 * term.midterm + 3 * term.final
    return round_score(total / (len(term.regular) + 5))


def year_average(hk1: Decimal, hk2: Decimal) -> Decimal:
    """ĐTBmcn = (ĐTBmhkI + 2·ĐTBmhkII) / 3, from the printed (rounded) term averages."""
    return round_score((hk1 + 2 * hk2) / 3)


def learning_result(averages: Iterable[Decimal], passes: Iterable[Pass]) -> Rating:
    """Kết quả học tập (Điều 9) from the averages of score subjects and comment ratings."""
    avgs = list(averages)
    fails = sum(1 for p in passes if p is Pass.CHUA_DAT)
    if fails == 0 and all(a >= Decimal("6.5") for a in avgs) and (
        sum(a >= 8 for a in avgs) >= min(6, len(avgs))
    ):
        return Rating.TOT
    if fails == 0 and all(a >= 5 for a in avgs) and (
        sum(a >= Decimal("6.5") for a in avgs) >= min(6, len(avgs))
    ):
        return Rating.KHA
    if fails <= 1 and sum(a >= 5 for a in avgs) >= min(6, len(avgs)) and (
        all(a >= Decimal("3.5") for a in avgs)
    ):
        return Rating.DAT
    return Rating.CHUA_DAT


def expected_promotion(conduct: Rating, learning: Rating, days_absent: int) -> Promotion | None:
    """Điều 12–13: the promotion that follows from the year results, or None when the school
    must choose between re-test and summer training (both are recorded decisions)."""
    if days_absent > MAX_DAYS_ABSENT:
        return Promotion.O_LAI
    if conduct in _PASSING and learning in _PASSING:
        return Promotion.LEN_LOP
    return None


def check_bundle(bundle: TermBundle) -> list[Problem]:
    """Every rule problem in the bundle (empty list: the bundle may be locked)."""
    return list(_bundle_problems(bundle))


def _bundle_problems(b: TermBundle) -> Iterator[Problem]:
    catalog = subjects_for(b.level)
    teacher_ids = {t.id for t in b.teachers}
    if len(teacher_ids) != len(b.teachers):
        yield Problem("teachers", "có mã giáo viên bị trùng")
    if b.class_.grade not in GRADES[b.level]:
        yield Problem("class.grade", f"khối {b.class_.grade} không thuộc cấp {b.level}")
    for ref, where in ((b.school.principal_id, "school.principal_id"),
                       (b.class_.homeroom_teacher_id, "class.homeroom_teacher_id")):
        if ref not in teacher_ids:
            yield Problem(where, f"mã giáo viên «{ref}» không có trong danh sách giáo viên")
    assigned: dict[str, str] = {}
    for i, a in enumerate(b.assignments):
        if a.subject not in catalog:
            yield Problem(f"assignments[{i}].subject", f"môn «{a.subject}» không có ở cấp {b.level}")
        elif a.subject in assigned:
            yield Problem(f"assignments[{i}].subject", f"môn «{a.subject}» được phân công hai lần")
        if a.teacher_id not in teacher_ids:
            yield Problem(f"assignments[{i}].teacher_id",
                          f"mã giáo viên «{a.teacher_id}» không có trong danh sách giáo viên")
        assigned[a.subject] = a.teacher_id
    for code in catalog:
        if code not in assigned:
            yield Problem("assignments", f"môn «{catalog[code].name}» chưa có giáo viên phụ trách")
    seen: set[str] = set()
    for s in b.students:
        if s.code in seen:
            yield Problem("code", "mã học sinh bị trùng trong lớp", s.code, s.full_name)
        seen.add(s.code)
        yield from _student_problems(s, b.term, catalog)


def _student_problems(s: Student, term: Term, catalog: dict[str, Subject]) -> Iterator[Problem]:
    def problem(field: str, message: str, subject: Subject | None = None) -> Problem:
        return Problem(field, message, s.code, s.full_name, subject.name if subject else None)

    full_year = term is Term.CN
    by_code: dict[str, SubjectResult] = {}
    for r in s.results:
        if r.subject not in catalog:
            yield problem("results.subject", f"môn «{r.subject}» không có trong chương trình")
            continue
        if r.subject in by_code:
            yield problem("results.subject", "môn bị khai hai lần", catalog[r.subject])
        by_code[r.subject] = r
    hk1_avgs: list[Decimal] = []
    year_avgs: list[Decimal] = []
    hk1_passes: list[Pass] = []
    year_passes: list[Pass] = []
    for code, subject in catalog.items():
        r = by_code.get(code)
        if r is None:
            yield problem("results", "thiếu kết quả môn học", subject)
            continue
        if subject.assessment is Assessment.SCORE:
            for name in ("rating_hk1", "rating_hk2", "rating_year"):
                if getattr(r, name) is not None:
                    yield problem(name, "môn tính điểm không nhận xếp mức Đạt/Chưa đạt", subject)
            terms = [("hk1", r.hk1)] + ([("hk2", r.hk2)] if full_year else [])
            ok = True
            for name, t in terms:
                if t is None:
                    yield problem(name, "thiếu điểm học kì", subject)
                    ok = False
                    continue
                if len(t.regular) < subject.min_regular:
                    yield problem(f"{name}.regular",
                                  f"cần ít nhất {subject.min_regular} điểm ĐĐGtx, có {len(t.regular)}",
                                  subject)
                    ok = False
                    continue
                expected = term_average(t)
                if t.average != expected:
                    yield problem(f"{name}.average",
                                  f"ĐTBmhk ghi {t.average}, tính theo Thông tư 22 là {expected}",
                                  subject)
                    ok = False
            if not full_year:
                if r.hk2 is not None or r.year_average is not None:
                    yield problem("hk2", "dữ liệu học kì I không được có điểm học kì II/cả năm",
                                  subject)
                if ok and r.hk1 is not None:
                    hk1_avgs.append(r.hk1.average)
                continue
            if r.year_average is None:
                yield problem("year_average", "thiếu ĐTBmcn", subject)
            elif ok and r.hk1 is not None and r.hk2 is not None:
                expected = year_average(r.hk1.average, r.hk2.average)
                if r.year_average != expected:
                    yield problem("year_average",
                                  f"ĐTBmcn ghi {r.year_average}, tính theo Thông tư 22 là {expected}",
                                  subject)
                else:
                    year_avgs.append(r.year_average)
            if r.hk1 is not None and ok:
                hk1_avgs.append(r.hk1.average)
        else:
            if r.hk1 or r.hk2 or r.year_average is not None:
                yield problem("hk1", "môn đánh giá bằng nhận xét không nhận điểm số", subject)
            needed = ["rating_hk1"] + (["rating_hk2", "rating_year"] if full_year else [])
            for name in needed:
                if getattr(r, name) is None:
                    yield problem(name, "thiếu mức đánh giá (Đạt/Chưa đạt)", subject)
            if r.rating_hk1 is not None:
                hk1_passes.append(r.rating_hk1)
            if r.rating_year is not None:
                year_passes.append(r.rating_year)
    yield from _results_problems(s, full_year, hk1_avgs, hk1_passes, year_avgs, year_passes,
                                 catalog, problem)


def _results_problems(s: Student, full_year: bool, hk1_avgs: list[Decimal], hk1_passes: list[Pass],
                      year_avgs: list[Decimal], year_passes: list[Pass], catalog: dict[str, Subject],
                      problem: Callable[[str, str], Problem]) -> Iterator[Problem]:
    """Learning results, year results and promotion, once every subject's average is known."""
    n_score = sum(1 for x in catalog.values() if x.assessment is Assessment.SCORE)
    n_comment = len(catalog) - n_score
    if len(hk1_avgs) == n_score and len(hk1_passes) == n_comment:
        expected = learning_result(hk1_avgs, hk1_passes)
        if s.learning.hk1 is not expected:
            yield problem("learning.hk1",
                          f"kết quả học tập ghi «{s.learning.hk1}», theo điểm là «{expected}»")
    if not full_year:
        for group in ("conduct", "learning"):
            ratings = getattr(s, group)
            if ratings.hk2 is not None or ratings.year is not None:
                yield problem(f"{group}.year", "dữ liệu học kì I không có kết quả cả năm")
        if s.promotion is not None:
            yield problem("promotion", "chỉ xét lên lớp ở dữ liệu cả năm")
        return
    for group in ("conduct", "learning"):
        ratings = getattr(s, group)
        if ratings.hk2 is None or ratings.year is None:
            yield problem(f"{group}.year", "thiếu kết quả học kì II hoặc cả năm")
    if s.learning.year is None or s.conduct.year is None:
        return
    if len(year_avgs) == n_score and len(year_passes) == n_comment:
        expected = learning_result(year_avgs, year_passes)
        if s.learning.year is not expected:
            yield problem("learning.year",
                          f"kết quả học tập cả năm ghi «{s.learning.year}», theo điểm là «{expected}»")
    if s.promotion is None:
        yield problem("promotion", "thiếu kết quả xét lên lớp")
        return
    must = expected_promotion(s.conduct.year, s.learning.year, s.days_absent)
    if must is not None and s.promotion is not must:
        yield problem("promotion", f"ghi «{s.promotion}», theo kết quả cả năm phải là «{must}»")
    if must is None and s.promotion is Promotion.LEN_LOP:
        yield problem("promotion", "kết quả cả năm chưa đạt nên chưa thể «Được lên lớp»")
