"""Term data: schema, Thông tư 22 rule checks, locking, and `hsdt render` refusing bad bundles."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hsdt.cli import app
from hsdt.domain.bundles import (
    bundle_json,
    decode_json,
    load_locked,
    lock_bundle,
    locked_json,
    parse_bundle,
)
from hsdt.domain.errors import BundleRejected, UnusableInput
from hsdt.domain.grading import round_score, term_average, year_average
from hsdt.domain.sample import sample_bundle
from hsdt.domain.schema import ScoreTerm


@pytest.fixture(scope="module")
def good() -> dict:
    return bundle_json(sample_bundle(seed=7, students=5))


def _student_subject(data: dict, code: str) -> tuple[dict, dict]:
    st = data["students"][2]
    return st, next(r for r in st["results"] if r["subject"] == code)


def test_sample_is_deterministic_and_realistic() -> None:
    a, b = sample_bundle(seed=11), sample_bundle(seed=11)
    assert bundle_json(a) == bundle_json(b)
    assert bundle_json(sample_bundle(seed=12)) != bundle_json(a)
    assert len(a.students) == 40
    names = " ".join(s.full_name for s in a.students)
    assert any(ch in names for ch in "ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ")
    assert len({s.code for s in a.students}) == 40
    assert all(len(s.code) == 12 and s.code.isdigit() for s in a.students)
    assert len(a.assignments) == 12  # the THCS subject list


def test_tt22_averages_round_as_printed() -> None:
    t = ScoreTerm(regular=[Decimal("8"), Decimal("7"), Decimal("9"), Decimal("6")],
                  midterm=Decimal("7.5"), final=Decimal("8.5"), average=Decimal(0))
    # (8+7+9+6 + 2·7.5 + 3·8.5) / 9 = 70.5 / 9 = 7.8333… → 7.8
    assert term_average(t) == Decimal("7.8")
    assert year_average(Decimal("6.5"), Decimal("7.0")) == Decimal("6.8")  # 20.5/3 = 6.833
    assert round_score(Decimal("8.25")) == Decimal("8.3")  # half up, not banker's


def test_lock_is_canonical_and_detects_change(good: dict) -> None:
    locked = lock_bundle(parse_bundle(good), "Văn thư")
    shuffled = json.loads(json.dumps(good), object_pairs_hook=lambda p: dict(reversed(p)))
    assert lock_bundle(parse_bundle(shuffled), "Văn thư").lock.sha256 == locked.lock.sha256
    again = load_locked(decode_json(locked_json(locked)))
    assert again.lock == locked.lock
    tampered = json.loads(locked_json(locked))
    tampered["bundle"]["students"][0]["days_absent"] += 1
    with pytest.raises(BundleRejected, match="thay đổi sau khi khoá"):
        load_locked(tampered)


def _rejects(data: dict, *fragments: str) -> BundleRejected:
    with pytest.raises(BundleRejected) as info:
        parse_bundle(data)
    text = info.value.message
    for f in fragments:
        assert f in text, text
    return info.value


def test_missing_field_is_named(good: dict) -> None:
    data = copy.deepcopy(good)
    st, res = _student_subject(data, "TOAN")
    del res["hk1"]["midterm"]
    _rejects(data, st["code"], st["full_name"], "Toán", "hk1.midterm", "thiếu trường")


def test_wrong_average_is_named(good: dict) -> None:
    data = copy.deepcopy(good)
    st, res = _student_subject(data, "KHTN")
    res["hk2"]["average"] = str(Decimal(res["hk2"]["average"]) + Decimal("0.1"))
    _rejects(data, st["code"], "Khoa học tự nhiên", "hk2.average", "Thông tư 22")


def test_wrong_year_average_and_learning_result(good: dict) -> None:
    data = copy.deepcopy(good)
    st, res = _student_subject(data, "NGU_VAN")
    res["year_average"] = "0.5"
    _rejects(data, st["code"], "Ngữ văn", "year_average")


def test_unknown_rating_is_named(good: dict) -> None:
    data = copy.deepcopy(good)
    st, res = _student_subject(data, "GDTC")
    res["rating_year"] = "Giỏi"
    _rejects(data, st["code"], "Giáo dục thể chất", "rating_year", "Giỏi")
    data = copy.deepcopy(good)
    data["students"][1]["conduct"]["year"] = "Xuất sắc"
    _rejects(data, data["students"][1]["code"], "conduct.year")


def test_malformed_student_code_is_named(good: dict) -> None:
    data = copy.deepcopy(good)
    data["students"][3]["code"] = "01020304"
    _rejects(data, "01020304", "code", "sai định dạng")


def test_inconsistent_promotion(good: dict) -> None:
    data = copy.deepcopy(good)
    st = data["students"][0]
    st["days_absent"] = 60
    _rejects(data, st["code"], "promotion", "Không được lên lớp")


def test_not_utf8_and_not_json() -> None:
    with pytest.raises(UnusableInput, match="UTF-8"):
        decode_json("{\"a\": \"Hà\"}".encode("latin-1"))
    with pytest.raises(UnusableInput, match="JSON"):
        decode_json(b"{not json")


def test_render_cli_writes_nothing_for_a_bad_bundle(good: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(good)
    data["students"][4]["results"][0]["hk1"]["final"] = "11"
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", str(src), "--out", str(out)])
    assert result.exit_code == 1
    assert "hk1.final" in result.output and data["students"][4]["code"] in result.output
    assert not out.exists()
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps(good, ensure_ascii=False).encode("utf-16"))
    result = CliRunner().invoke(app, ["render", str(latin), "--out", str(out)])
    assert result.exit_code == 2 and "UTF-8" in result.output
    assert not out.exists()


def test_json_schema_is_published() -> None:
    schema = json.loads((Path(__file__).parents[1] / "docs" / "term-bundle.schema.json")
                        .read_text(encoding="utf-8"))
    from hsdt.domain.schema import TermBundle

    assert schema == TermBundle.model_json_schema(by_alias=True)
