"""The public answer to "is this record real?" — what anyone who scans a record's QR code
(``/v/{record_id}``) or uploads a copy is told.

Nghị định 13/2023/NĐ-CP (personal data protection) asks for the least disclosure that
serves the purpose. The purpose here is to confirm a document the asker already holds, so
the answer says only whether it is authentic and current, and names the issuing school, the
kind of record, the school year and the date of issue — facts about the *document*, never
about the *student*. :class:`PublicAnswer` has no field that could hold a grade, a date of
birth, the student code or the student's name (nor the record id, which contains the student
code), so no caller can leak them through it by mistake.

The decision is a pure function of what the archive found and what the verifier said: the
API handler looks things up, this module decides and words the answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from hsdt.signing.verification import VerificationReport

_VN = ZoneInfo("Asia/Ho_Chi_Minh")

PublicStatus = Literal["current", "superseded", "not_found", "not_authentic"]

MESSAGES: dict[PublicStatus, str] = {
    "current": ("Hồ sơ là bản gốc hợp lệ do {school} cấp, đang có hiệu lực: các chữ ký số đều "
                "hợp lệ và nội dung không bị thay đổi kể từ khi ký."),
    "superseded": ("Hồ sơ là bản gốc do {school} cấp nhưng đã được thay thế bằng một bản đính "
                   "chính; hãy đề nghị nhà trường hoặc người học cung cấp bản hiện hành."),
    "not_found": ("Không tìm thấy hồ sơ này trong kho lưu trữ hồ sơ điện tử; hồ sơ có thể chưa "
                  "được lưu trữ hoặc mã xác minh không đúng."),
    "not_authentic": ("Không xác nhận được hồ sơ này: chữ ký số không hợp lệ hoặc nội dung khác "
                      "với bản gốc đã lưu trữ. Không sử dụng hồ sơ này làm căn cứ."),
}


# What an authentic answer shows besides its sentence, in this order, on the page and in the CLI.
_FACTS = (("Đơn vị cấp", "school_name"), ("Loại hồ sơ", "kind_title"), ("Năm học", "school_year"),
          ("Ngày ký cuối", "issued_date"))


@dataclass(frozen=True)
class PublicAnswer:
    """The public verification answer. Deliberately only these fields: see the module doc."""

    authentic: bool
    status: PublicStatus
    school_name: str | None
    kind_title: str | None
    school_year: str | None
    issued_date: str | None  # YYYY-MM-DD in Asia/Ho_Chi_Minh: the day of the final signature
    message: str  # one Vietnamese sentence for the asker

    def __post_init__(self) -> None:
        # The answer vouches for the document only when it is authentic; for anything else
        # it must not repeat what an unverified file claims about itself.
        if self.authentic != (self.status in ("current", "superseded")):
            raise ValueError(f"authentic={self.authentic} mâu thuẫn với status={self.status}")
        if not self.authentic and any((self.school_name, self.kind_title, self.school_year,
                                       self.issued_date)):
            raise ValueError("Câu trả lời cho hồ sơ không xác thực không được nêu thông tin hồ sơ")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def facts(self) -> list[tuple[str, str]]:
        """The labelled facts as a Vietnamese reader reads them (days as dd/mm/yyyy); none
        for a refusal, which states nothing about the document."""
        out: list[tuple[str, str]] = []
        for label, name in _FACTS:
            value = getattr(self, name)
            if value:
                out.append((label, date.fromisoformat(value).strftime("%d/%m/%Y")
                            if name == "issued_date" else str(value)))
        return out


def public_answer(report: VerificationReport | None, *, superseded_by: str | None,
                  found: bool, matches_archive: bool | None) -> PublicAnswer:
    """Decide what the public is told about one record.

    ``found``: the archive holds a record under the asked id. ``report``: its verification
    (None when there is nothing to verify). ``matches_archive``: whether a copy the asker
    presented is byte-identical to an archived version (None when they presented none — a QR
    scan). ``superseded_by``: set when the archived version in question has a successor; its
    value is not disclosed (only that a newer version exists).

    Fails closed: only a found, valid report whose copy (if any) matches the archive is
    authentic.
    """
    if not found:
        return _refusal("not_found")
    if report is None or not report.valid or matches_archive is False:
        return _refusal("not_authentic")
    status: PublicStatus = "superseded" if superseded_by else "current"
    school = report.school_name or f"trường có mã {report.school_code}"
    return PublicAnswer(
        authentic=True, status=status, school_name=report.school_name or None,
        kind_title=report.plan_title, school_year=report.school_year,
        issued_date=_issued_date(report), message=MESSAGES[status].format(school=school))


def _refusal(status: PublicStatus) -> PublicAnswer:
    return PublicAnswer(authentic=False, status=status, school_name=None, kind_title=None,
                        school_year=None, issued_date=None, message=MESSAGES[status])


def _issued_date(report: VerificationReport) -> str | None:
    """The record is issued when its plan is complete: the time of the last signature (the
    principal's, which locks the record), as a Vietnamese calendar day."""
    times = [s.signing_time for s in report.signatures if s.signing_time]
    if not times:
        return None
    last = max(datetime.fromisoformat(t) for t in times)
    return last.astimezone(_VN).date().isoformat()
