"""Signature plans: who signs a kind of record, in which order, and what each signature locks.

A plan is configuration (``config/plans/<kind>.toml``); resolving it against a record's
data gives the concrete fields and the person each one is assigned to. Enforcement lives in
:mod:`hsdt.signing.policy`, reading only this resolved form.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from hsdt.domain.errors import HsdtError


class Role(StrEnum):
    SCHOOL_SEAL = "school_seal"
    SUBJECT_TEACHER = "subject_teacher"
    HOMEROOM_TEACHER = "homeroom_teacher"
    PRINCIPAL = "principal"


ROLE_TITLES = {
    Role.SCHOOL_SEAL: "Chữ ký số của nhà trường",
    Role.SUBJECT_TEACHER: "Giáo viên bộ môn",
    Role.HOMEROOM_TEACHER: "Giáo viên chủ nhiệm",
    Role.PRINCIPAL: "Hiệu trưởng",
}


@dataclass(frozen=True)
class StageSpec:
    id: str
    title: str
    role: Role
    fields: tuple[str, ...] = ()
    per_subject: bool = False
    certify: bool = False
    docmdp: str | None = None
    lock_all: bool = False


@dataclass(frozen=True)
class PlanSpec:
    kind: str
    title: str
    stages: tuple[StageSpec, ...]
    seal_level: str


@dataclass(frozen=True)
class FieldAssignment:
    """A signature field of one record and the single party allowed to sign it."""

    name: str
    stage: int
    role: Role
    assignee: str  # person id, or "school:<code>" for the seal
    assignee_name: str
    label: str  # shown on the form and in reports
    subject: str | None = None
    certify: bool = False
    lock_all: bool = False


@dataclass(frozen=True)
class ResolvedPlan:
    spec: PlanSpec
    fields: tuple[FieldAssignment, ...]

    def field(self, name: str) -> FieldAssignment:
        for f in self.fields:
            if f.name == name:
                return f
        known = ", ".join(f.name for f in self.fields)
        raise HsdtError(f"Trường chữ ký «{name}» không có trong kế hoạch ký (có: {known}).",
                        code="unknown_field")

    def stage_fields(self, stage: int) -> list[FieldAssignment]:
        return [f for f in self.fields if f.stage == stage]

    @property
    def stage_count(self) -> int:
        return len(self.spec.stages)


def seal_assignee(school_code: str) -> str:
    return f"school:{school_code}"


def subject_field(subject_code: str) -> str:
    return f"subject_{subject_code}"


def load_plan(path: Path) -> PlanSpec:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HsdtError(f"Không tìm thấy kế hoạch ký {path}.", code="plan_missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise HsdtError(f"Kế hoạch ký {path} sai cú pháp TOML: {exc}", code="plan_invalid") from exc
    return plan_from_dict(raw)


def plan_from_dict(raw: dict[str, Any]) -> PlanSpec:
    stages = []
    for i, s in enumerate(raw.get("stages", [])):
        try:
            role = Role(s["role"])
        except (KeyError, ValueError):
            raise HsdtError(f"Giai đoạn {i + 1} của kế hoạch ký có vai trò không hợp lệ.",
                            code="plan_invalid") from None
        stages.append(StageSpec(
            id=s.get("id", f"stage{i + 1}"), title=s.get("title", ROLE_TITLES[role]), role=role,
            fields=tuple(s.get("fields", ())), per_subject=bool(s.get("per_subject", False)),
            certify=bool(s.get("certify", False)), docmdp=s.get("docmdp"),
            lock_all=bool(s.get("lock_all", False)),
        ))
    if not stages:
        raise HsdtError("Kế hoạch ký không có giai đoạn nào.", code="plan_invalid")
    if stages[0].certify is False and any(s.certify for s in stages):
        raise HsdtError("Chỉ giai đoạn đầu tiên được là chữ ký chứng thực.", code="plan_invalid")
    return PlanSpec(kind=raw["kind"], title=raw.get("title", raw["kind"]), stages=tuple(stages),
                    seal_level=raw.get("seal", {}).get("level", "B-LTA"))


def resolve_plan(spec: PlanSpec, record_data: dict[str, Any], subject_names: dict[str, str]
                 ) -> ResolvedPlan:
    """Bind every field of the plan to the person the record's data names for it."""
    teachers = {t["id"]: t["full_name"] for t in record_data["teachers"]}
    school = record_data["school"]
    by_subject = {a["subject"]: a["teacher_id"] for a in record_data["assignments"]}
    out: list[FieldAssignment] = []
    for i, stage in enumerate(spec.stages):
        if stage.per_subject:
            for code, name in subject_names.items():
                tid = by_subject[code]
                out.append(FieldAssignment(subject_field(code), i, stage.role, tid, teachers[tid],
                                           f"GV {name}", subject=code))
            continue
        for fname in stage.fields:
            if stage.role is Role.SCHOOL_SEAL:
                who, who_name = seal_assignee(school["code"]), school["name"]
            elif stage.role is Role.PRINCIPAL:
                who = school["principal_id"]
                who_name = teachers[who]
            elif stage.role is Role.HOMEROOM_TEACHER:
                who = record_data["class"]["homeroom_teacher_id"]
                who_name = teachers[who]
            else:
                raise HsdtError(f"Vai trò {stage.role} cần per_subject = true.", code="plan_invalid")
            out.append(FieldAssignment(fname, i, stage.role, who, who_name, stage.title,
                                       certify=stage.certify, lock_all=stage.lock_all))
    return ResolvedPlan(spec=spec, fields=tuple(out))
