"""One official record (a học bạ year page) cut from a locked class bundle.

A record embeds only its own student's data — never the classmates' — together with the
bundle's lock, so the PDF proves which locked data it was made from without disclosing
anyone else's grades.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hsdt.domain.canonical import canonical_json, sha256_hex
from hsdt.domain.schema import LockedBundle, Student, TermBundle
from hsdt.domain.subjects import Subject, subjects_for

HOC_BA_THCS = "hoc_ba_thcs"
RECORD_SCHEMA = "hsdt.record/1"


@dataclass(frozen=True)
class Record:
    """Everything a renderer and a signing plan need to know about one record."""

    kind: str
    record_id: str
    data: dict[str, Any]  # JSON-ready, embedded in the PDF
    data_sha256: str  # SHA-256 of canonical_json(data); written to XMP
    student: Student
    bundle: TermBundle

    @property
    def data_bytes(self) -> bytes:
        return canonical_json(self.data)

    def subjects(self) -> list[Subject]:
        return list(subjects_for(self.bundle.level).values())


def record_id_for(kind: str, bundle: TermBundle, student: Student) -> str:
    """Stable id: kind, school, year, term and student; the data digest makes revisions distinct."""
    return f"{kind}.{bundle.school.code}.{bundle.school_year}.{bundle.term}.{student.code}"


def record_for(locked: LockedBundle, student: Student, kind: str = HOC_BA_THCS) -> Record:
    b = locked.bundle
    people = {b.school.principal_id, b.class_.homeroom_teacher_id}
    people |= {a.teacher_id for a in b.assignments}
    data: dict[str, Any] = {
        "schema": RECORD_SCHEMA,
        "kind": kind,
        "record_id": record_id_for(kind, b, student),
        "level": b.level,
        "school": b.school.model_dump(mode="json", exclude_none=True),
        "school_year": b.school_year,
        "term": b.term.value,
        "class": b.class_.model_dump(mode="json", exclude_none=True),
        "teachers": [t.model_dump(mode="json", exclude_none=True)
                     for t in b.teachers if t.id in people],
        "assignments": [a.model_dump(mode="json") for a in b.assignments],
        "student": student.model_dump(mode="json", exclude_none=True),
        "bundle_lock": locked.lock.model_dump(mode="json"),
    }
    return Record(kind=kind, record_id=data["record_id"], data=data,
                  data_sha256=sha256_hex(canonical_json(data)), student=student, bundle=b)


def records_for(locked: LockedBundle, kind: str = HOC_BA_THCS) -> list[Record]:
    return [record_for(locked, s, kind) for s in locked.bundle.students]
