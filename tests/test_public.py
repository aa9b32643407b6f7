"""The public verification answer (what a QR scan shows) and the QR code that leads to it.

The answer must confirm the document and disclose nothing about the student (Nghị định
13/2023): checked against the very data embedded in the sealed record.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from conftest import World

from hsdt.archive.public import PublicAnswer, public_answer
from hsdt.domain.errors import HsdtError
from hsdt.renderers import Renderer, embedded_files, verify_url
from hsdt.renderers._qr import qr_svg
from hsdt.signing.verification import VerificationReport
from hsdt.workflow import plan_of

ALLOWED_FIELDS = {"authentic", "status", "school_name", "kind_title", "school_year",
                  "issued_date", "message"}


@pytest.fixture(scope="module")
def report(world: World, sealed: bytes) -> VerificationReport:
    return world.verifier(online=False).verify(sealed)


@pytest.fixture(scope="module")
def record_data(sealed: bytes) -> dict[str, Any]:
    return json.loads(embedded_files(sealed)["record.json"])


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif value is not None:
        yield value


def _assert_discloses_nothing_personal(answer: PublicAnswer, data: dict[str, Any]) -> None:
    payload = answer.to_json()
    assert set(payload) == ALLOWED_FIELDS
    text = json.dumps(payload, ensure_ascii=False)
    student = data["student"]
    born = date.fromisoformat(student["date_of_birth"])
    for secret in (student["full_name"], student["code"], data["record_id"],
                   born.isoformat(), born.strftime("%d/%m/%Y")):
        assert secret not in text, secret
    # Given names alone would identify the student to whoever knows the class.
    assert student["full_name"].split()[-1] not in text
    grades: set[str] = set()
    ratings: set[str] = set()
    for leaf in _leaves([student["results"], student.get("conduct"), student.get("learning")]):
        try:
            d = Decimal(str(leaf))
        except InvalidOperation:
            ratings.add(str(leaf))
            continue
        if d != d.to_integral_value() or "." in str(leaf):
            grades |= {str(leaf), str(leaf).replace(".", ",")}
    assert grades, "the sample record has grades to look for"
    for g in grades:
        assert g not in text, g
    assert not ratings & {str(v) for v in payload.values()}


def test_sealed_record_is_authentic_and_current(world: World, report: VerificationReport,
                                                record_data: dict[str, Any]) -> None:
    answer = public_answer(report, superseded_by=None, found=True, matches_archive=True)
    assert answer.authentic and answer.status == "current"
    rec = world.records[0]
    assert answer.school_name == rec.bundle.school.name
    assert answer.kind_title == plan_of(rec).spec.title == "Học bạ THCS — trang năm học"
    assert answer.school_year == rec.bundle.school_year
    assert answer.issued_date is not None and date.fromisoformat(answer.issued_date)
    assert rec.bundle.school.name in answer.message and "hợp lệ" in answer.message
    # what the page and `hsdt verify --public` show, in order, the day as dd/mm/yyyy
    assert answer.facts() == [
        ("Đơn vị cấp", rec.bundle.school.name), ("Loại hồ sơ", "Học bạ THCS — trang năm học"),
        ("Năm học", rec.bundle.school_year),
        ("Ngày ký cuối", date.fromisoformat(answer.issued_date).strftime("%d/%m/%Y"))]
    _assert_discloses_nothing_personal(answer, record_data)
    # a QR scan (no copy presented) gets the same answer
    assert public_answer(report, superseded_by=None, found=True, matches_archive=None) == answer


def test_superseded_record(report: VerificationReport, record_data: dict[str, Any]) -> None:
    answer = public_answer(report, superseded_by="b" * 64, found=True, matches_archive=True)
    assert answer.authentic and answer.status == "superseded"
    assert "thay thế" in answer.message and "b" * 64 not in json.dumps(answer.to_json())
    _assert_discloses_nothing_personal(answer, record_data)


def test_not_found() -> None:
    answer = public_answer(None, superseded_by=None, found=False, matches_archive=None)
    assert not answer.authentic and answer.status == "not_found"
    assert answer.school_name is answer.kind_title is answer.school_year is None
    assert answer.issued_date is None and "Không tìm thấy" in answer.message
    assert set(answer.to_json()) == ALLOWED_FIELDS
    assert answer.facts() == []


def test_tampered_or_different_copy_is_not_authentic(world: World, sealed: bytes,
                                                     report: VerificationReport,
                                                     record_data: dict[str, Any]) -> None:
    data = bytearray(sealed)
    data[data.index(b"stream", 2000) + 40] ^= 0x01
    bad = world.verifier(online=False).verify(bytes(data))
    for answer in (public_answer(bad, superseded_by=None, found=True, matches_archive=None),
                   public_answer(report, superseded_by=None, found=True, matches_archive=False)):
        assert not answer.authentic and answer.status == "not_authentic"
        # nothing an unverified file says about itself is repeated
        assert answer.school_name is None and answer.kind_title is None
        _assert_discloses_nothing_personal(answer, record_data)


def test_answer_has_no_place_for_personal_data() -> None:
    names = {f.name for f in dataclasses.fields(PublicAnswer)}
    assert names == ALLOWED_FIELDS
    with pytest.raises(ValueError):
        PublicAnswer(False, "not_found", "Trường THCS X", None, None, None, "…")
    with pytest.raises(ValueError):
        PublicAnswer(True, "not_authentic", None, None, None, None, "…")


# -- the QR code on the page ------------------------------------------------------------------

def test_page_carries_the_public_verification_url(world: World,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rec = world.records[1]
    plan = plan_of(rec)
    base = "https://tracuu.example.edu.vn/hsdt/"
    url = verify_url(base.rstrip("/"), rec.record_id)
    assert url == f"https://tracuu.example.edu.vn/hsdt/v/{rec.record_id}"
    renderer = Renderer(verify_base_url=base)
    assert str(qr_svg(url)) in renderer.html(rec, plan)
    monkeypatch.setenv("HSDT_VERIFY_BASE_URL", base)
    assert Renderer().html(rec, plan) == renderer.html(rec, plan)
    monkeypatch.delenv("HSDT_VERIFY_BASE_URL")
    default = Renderer()
    assert str(qr_svg(f"https://hsdt.example.vn/v/{rec.record_id}")) in default.html(rec, plan)
    # the base URL is part of the output: another base, another PDF; the same, the same bytes
    pdf = renderer.render(rec, plan)
    assert default.render(rec, plan, verify_base_url=base) == pdf
    assert default.render(rec, plan) != pdf


@pytest.mark.parametrize("bad", ["ftp://x.vn", "hsdt.example.vn", "https://x.vn/?a=1",
                                 "https://x.vn/#top"])
def test_bad_verification_base_url_is_refused(bad: str) -> None:
    with pytest.raises(HsdtError):
        Renderer(verify_base_url=bad)
