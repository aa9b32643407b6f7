"""Who may do what, where: the regulation's roles (Điều 4–14) as one table and a few queries.

Everything here only reads. Two questions are asked of every request:

1. **Can the caller see the target at all?** Each role has a *view*: administrators, the
   principal and the clerk see everything beneath the unit their role is granted on (a
   district its schools, a school its classes); a homeroom teacher sees the classes they lead,
   a subject teacher the classes they teach. Anyone may know that their own unit and the units
   above it exist. A target outside every view is ``not_visible`` — the API answers 404, so
   that one school cannot even learn that another school's record exists.
2. **May the caller do this action to it?** :data:`RULES` gives, per action, the roles that may
   perform it and how far that permission reaches. A visible target that no rule reaches is
   ``forbidden`` (403).

The table, read as the regulation reads:

==================  =====  =====  ======  =========  ========  ========  =====
action              Sở     Phòng  QTHT    Hiệu tr.   GVCN      GVBM      Văn thư
==================  =====  =====  ======  =========  ========  ========  =====
read_record         unit   unit   unit    unit       homeroom  taught    unit
read_progress       unit   unit   unit    unit       homeroom  taught    unit
import_bundle       –      –      unit    unit       homeroom  –         –
lock_bundle         –      –      unit    unit       –         –         –
sign_field          –      –      seal    own, seal  own       own       –
reject_field        –      –      seal    own, seal  own       own       –
request_correction  –      –      –       unit       homeroom  taught    –
approve_correction  –      –      –       unit       –         –         –
witness_correction  –      –      unit    –          homeroom  –         –
lock_window         unit   unit   unit    unit       –         –         –
issue_record        –      –      –       unit       –         –         –
manage_users        unit   unit   unit    –          –         –         –
bind_certificate    unit   unit   unit    –          –         –         –
read_audit          unit   unit   unit    unit       –         –         –
==================  =====  =====  ======  =========  ========  ========  =====

Where it comes from: Điều 7–9 (teachers sign their own results, the homeroom teacher their
class, the leader confirms and exports records to students), Điều 10 (nobody acts for another:
a field is signed only by the person the plan assigns it to, who must also hold the teaching
assignment), Điều 11.4 (the leader permits a correction; the HSĐT board and the homeroom
teacher witness it), Điều 12–13 (administrators manage accounts and permissions and set
lock/unlock windows; Sở and Phòng administrators inspect but sign nothing), Điều 14 (the
leader decides to lock). The clerk (văn thư, lưu trữ) reads and retrieves but never signs or
changes anything. The school's seal is applied by the server's HSM; the principal or the
school's system administrator may set it going, nobody else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from hsdt.db.models import (
    Bundle,
    BundleLock,
    Correction,
    Document,
    DocumentRevision,
    LockWindow,
    OrgUnit,
    RoleAssignment,
    RoleName,
    SchoolClass,
    SignatureStep,
    TeachingAssignment,
    User,
    WindowKind,
)
from hsdt.domain.plans import Role as PlanRole
from hsdt.domain.schema import Term


class Action(StrEnum):
    READ_RECORD = "read_record"  # a record, its PDF and report; archive search
    READ_PROGRESS = "read_progress"  # how many records wait at which stage, for whom (Điều 11.3)
    IMPORT_BUNDLE = "import_bundle"
    LOCK_BUNDLE = "lock_bundle"
    SIGN_FIELD = "sign_field"
    REJECT_FIELD = "reject_field"
    REQUEST_CORRECTION = "request_correction"
    APPROVE_CORRECTION = "approve_correction"
    WITNESS_CORRECTION = "witness_correction"
    LOCK_WINDOW = "lock_window"  # open / close data-entry and signing windows
    ISSUE_RECORD = "issue_record"  # export a record to a student (transfer, request)
    MANAGE_USERS = "manage_users"  # accounts and role assignments
    BIND_CERTIFICATE = "bind_certificate"
    READ_AUDIT = "read_audit"


class Reach(StrEnum):
    """How far a role's permission extends from the unit the role is granted on."""

    UNIT = "unit"  # anything in the unit's subtree
    HOMEROOM_CLASS = "homeroom"  # the classes whose homeroom teacher the caller is
    TAUGHT_CLASS = "taught"  # the classes the caller teaches a subject in
    OWN_FIELD = "own"  # a signature field assigned to the caller, matching their role and duty
    SEAL_FIELD = "seal"  # the school seal's field, in the caller's own school


class Outcome(StrEnum):
    ALLOWED = "allowed"
    FORBIDDEN = "forbidden"
    NOT_VISIBLE = "not_visible"


HTTP_STATUS = {Outcome.ALLOWED: 200, Outcome.FORBIDDEN: 403, Outcome.NOT_VISIBLE: 404}

_PROV, _DIST, _SADM = RoleName.PROVINCIAL_ADMIN, RoleName.DISTRICT_ADMIN, RoleName.SCHOOL_ADMIN
_PRIN, _HOME, _SUBJ, _CLERK = (RoleName.PRINCIPAL, RoleName.HOMEROOM_TEACHER, RoleName.SUBJECT_TEACHER,
                               RoleName.CLERK)
_U, _H, _T = Reach.UNIT, Reach.HOMEROOM_CLASS, Reach.TAUGHT_CLASS
_OWN, _SEAL = Reach.OWN_FIELD, Reach.SEAL_FIELD

VIEW: Mapping[RoleName, Reach] = {
    _PROV: _U, _DIST: _U, _SADM: _U, _PRIN: _U, _CLERK: _U, _HOME: _H, _SUBJ: _T,
}
"""What each role can see at all; outside it, targets do not exist for the caller."""

_SIGN: Mapping[RoleName, tuple[Reach, ...]] = {
    _SADM: (_SEAL,), _PRIN: (_OWN, _SEAL), _HOME: (_OWN,), _SUBJ: (_OWN,),
}
_ADMINS: Mapping[RoleName, tuple[Reach, ...]] = {_PROV: (_U,), _DIST: (_U,), _SADM: (_U,)}

RULES: Mapping[Action, Mapping[RoleName, tuple[Reach, ...]]] = {
    Action.READ_RECORD: {r: (v,) for r, v in VIEW.items()},
    Action.READ_PROGRESS: {r: (v,) for r, v in VIEW.items()},
    Action.IMPORT_BUNDLE: {_SADM: (_U,), _PRIN: (_U,), _HOME: (_H,)},
    Action.LOCK_BUNDLE: {_SADM: (_U,), _PRIN: (_U,)},
    Action.SIGN_FIELD: _SIGN,
    Action.REJECT_FIELD: _SIGN,
    Action.REQUEST_CORRECTION: {_PRIN: (_U,), _HOME: (_H,), _SUBJ: (_T,)},
    Action.APPROVE_CORRECTION: {_PRIN: (_U,)},
    Action.WITNESS_CORRECTION: {_SADM: (_U,), _HOME: (_H,)},
    Action.LOCK_WINDOW: {_PROV: (_U,), _DIST: (_U,), _SADM: (_U,), _PRIN: (_U,)},
    Action.ISSUE_RECORD: {_PRIN: (_U,)},
    Action.MANAGE_USERS: _ADMINS,
    Action.BIND_CERTIFICATE: _ADMINS,
    Action.READ_AUDIT: {_PROV: (_U,), _DIST: (_U,), _SADM: (_U,), _PRIN: (_U,)},
}
"""The one table of permissions: action → role → how far it reaches. Absent means never."""

OWN_FIELD_ROLE: Mapping[RoleName, PlanRole] = {
    _PRIN: PlanRole.PRINCIPAL, _HOME: PlanRole.HOMEROOM_TEACHER, _SUBJ: PlanRole.SUBJECT_TEACHER,
}
"""Which plan field a role's ``own`` reach may sign: a principal never signs a teacher's field."""


# --------------------------------------------------------------------------------------------
# Targets and decisions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepFacts:
    """What the rules need to know about a signature field."""

    role: PlanRole
    subject: str | None
    assignee_user_id: int | None


@dataclass(frozen=True)
class Target:
    """Where an object lives: its org unit (the school, for anything in a school), its class,
    and — for a signature field — the field's facts. Build one with :func:`target_of`."""

    unit_id: int
    class_id: int | None = None
    step: StepFacts | None = None
    label: str = ""


@dataclass(frozen=True)
class Decision:
    """The answer to "may this user do this action to this target", with its grounds.

    Never use it as a boolean — ask :attr:`allowed`; a decision object is not "true" just
    because it exists (fail closed).
    """

    outcome: Outcome
    action: Action
    code: str  # machine-readable ground
    message: str  # Vietnamese, for the person refused
    role: RoleName | None = None  # the role that granted it, when allowed

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.outcome]

    def __bool__(self) -> bool:
        raise TypeError("Decision không dùng làm giá trị đúng/sai; hãy đọc .allowed hoặc .outcome")


def target_of(session: Session, obj: Any) -> Target:
    """The :class:`Target` of a stored object (unit, class, bundle, document, step, …)."""
    match obj:
        case OrgUnit():
            return Target(obj.id, label=f"unit:{obj.code}")
        case SchoolClass():
            return Target(obj.school_id, obj.id, label=f"class:{obj.id}")
        case Bundle():
            return Target(obj.school_id, obj.class_id, label=f"bundle:{obj.id}")
        case BundleLock():
            return target_of(session, obj.bundle)
        case Document():
            return Target(obj.school_id, obj.class_id, label=f"document:{obj.record_id}")
        case DocumentRevision():
            return target_of(session, obj.document)
        case SignatureStep():
            doc = obj.revision.document
            facts = StepFacts(obj.role, obj.subject, obj.assignee_user_id)
            return Target(doc.school_id, doc.class_id, facts, label=f"step:{obj.id}:{obj.field_name}")
        case Correction():
            return Target(obj.bundle.school_id, obj.bundle.class_id, label=f"correction:{obj.id}")
        case LockWindow():
            if obj.class_id is not None:
                klass = obj.school_class or session.get(SchoolClass, obj.class_id)
                assert klass is not None
                return Target(klass.school_id, klass.id, label=f"window:{obj.id}")
            assert obj.org_unit_id is not None
            return Target(obj.org_unit_id, label=f"window:{obj.id}")
    raise TypeError(f"không xác định được phạm vi của {type(obj).__name__}")


# --------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------
def _live(role_filter: ColumnElement[bool] | None = None) -> Select[int]:
    stmt = select(RoleAssignment.org_unit_id).join(User, User.id == RoleAssignment.user_id).where(
        RoleAssignment.revoked_at.is_(None), User.is_active.is_(True))
    return stmt if role_filter is None else stmt.where(role_filter)


def ancestors(session: Session, unit_id: int) -> list[int]:
    """``unit_id`` and every unit above it, nearest first (school, Phòng, Sở)."""
    up = select(OrgUnit.id, OrgUnit.parent_id).where(OrgUnit.id == unit_id).cte("up", recursive=True)
    up = up.union_all(select(OrgUnit.id, OrgUnit.parent_id).join(up, OrgUnit.id == up.c.parent_id))
    rows = session.execute(select(up.c.id, up.c.parent_id)).all()
    parent = {r.id: r.parent_id for r in rows}
    chain, node = [], unit_id
    while node is not None and node in parent:
        chain.append(node)
        node = parent[node]
    return chain


def _subtree_of(roots: Select[int]) -> Select[int]:
    down = select(OrgUnit.id).where(OrgUnit.id.in_(roots)).cte("down", recursive=True)
    down = down.union(select(OrgUnit.id).join(down, OrgUnit.parent_id == down.c.id))
    return select(down.c.id)


def covered_units_query(user_id: int) -> Select[int]:
    """Ids of every unit beneath the units where the user holds a unit-wide role."""
    unit_roles = [r for r, v in VIEW.items() if v is Reach.UNIT]
    return _subtree_of(_live(RoleAssignment.user_id == user_id).where(RoleAssignment.role.in_(unit_roles)))


def visible_classes_query(user_id: int) -> Select[int]:
    """Ids of every class the user can see: in covered units, led as homeroom, or taught."""
    homeroom_schools = _live((RoleAssignment.user_id == user_id)
                             & (RoleAssignment.role == RoleName.HOMEROOM_TEACHER))
    subject_schools = _live((RoleAssignment.user_id == user_id)
                            & (RoleAssignment.role == RoleName.SUBJECT_TEACHER))
    return select(SchoolClass.id).where(or_(
        SchoolClass.school_id.in_(covered_units_query(user_id)),
        (SchoolClass.homeroom_teacher_id == user_id) & SchoolClass.school_id.in_(homeroom_schools),
        SchoolClass.id.in_(
            select(TeachingAssignment.class_id)
            .join(SchoolClass, SchoolClass.id == TeachingAssignment.class_id)
            .where(TeachingAssignment.teacher_id == user_id, SchoolClass.school_id.in_(subject_schools))),
    ))


def covered_unit_ids(session: Session, user: User) -> set[int]:
    """Which org units the user's unit-wide roles cover (a district: itself and its schools)."""
    return set(session.scalars(covered_units_query(user.id)))


def visible_class_ids(session: Session, user: User) -> set[int]:
    return set(session.scalars(visible_classes_query(user.id)))


def visible_documents(user: User) -> Select[Document]:
    """The documents the user may read, as a query to filter, order and page further."""
    return select(Document).where(Document.class_id.in_(visible_classes_query(user.id)))


def open_window(session: Session, kind: WindowKind, school_class: SchoolClass, term: Term,
                at: datetime) -> LockWindow | None:
    """The window of ``kind`` open for this class and term at ``at``, if any (Điều 13).

    A window set on the class, its school, its Phòng or its Sở covers it; with none open, the
    class's data (or its signing) is locked.
    """
    chain = ancestors(session, school_class.school_id)
    stmt = (select(LockWindow)
            .where(LockWindow.kind == kind, LockWindow.term == term,
                   LockWindow.school_year == school_class.school_year,
                   or_(LockWindow.class_id == school_class.id, LockWindow.org_unit_id.in_(chain)),
                   LockWindow.opens_at <= at, LockWindow.closes_at > at)
            .order_by(LockWindow.closes_at.desc(), LockWindow.id).limit(1))
    return session.scalars(stmt).first()


# --------------------------------------------------------------------------------------------
# The decision
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Grant:
    role: RoleName
    unit_id: int


@dataclass
class _Facts:
    """What one decision needs to know, each fact fetched at most once."""

    session: Session
    user_id: int
    target: Target
    _chains: dict[int, list[int]] = field(default_factory=dict)

    def chain(self, unit_id: int) -> list[int]:
        if unit_id not in self._chains:
            self._chains[unit_id] = ancestors(self.session, unit_id)
        return self._chains[unit_id]

    @cached_property
    def target_chain(self) -> list[int]:
        return self.chain(self.target.unit_id)

    @cached_property
    def klass(self) -> SchoolClass | None:
        cid = self.target.class_id
        return self.session.get(SchoolClass, cid) if cid is not None else None

    @cached_property
    def taught_subjects(self) -> frozenset[str]:
        if self.klass is None:
            return frozenset()
        return frozenset(self.session.scalars(select(TeachingAssignment.subject).where(
            TeachingAssignment.teacher_id == self.user_id, TeachingAssignment.class_id == self.klass.id)))

    def leads_class_in(self, school_id: int) -> bool:
        k = self.klass
        return k is not None and k.school_id == school_id and k.homeroom_teacher_id == self.user_id

    def teaches_class_in(self, school_id: int) -> bool:
        k = self.klass
        return k is not None and k.school_id == school_id and bool(self.taught_subjects)


def _active_grants(session: Session, user: User) -> list[_Grant]:
    if not user.is_active:
        return []
    rows = session.execute(select(RoleAssignment.role, RoleAssignment.org_unit_id).where(
        RoleAssignment.user_id == user.id, RoleAssignment.revoked_at.is_(None))).all()
    return [_Grant(r.role, r.org_unit_id) for r in rows]


def _reaches(reach: Reach, grant: _Grant, facts: _Facts) -> bool:
    target = facts.target
    if reach is Reach.UNIT:
        return grant.unit_id in facts.target_chain
    if reach is Reach.HOMEROOM_CLASS:
        return facts.leads_class_in(grant.unit_id)
    if reach is Reach.TAUGHT_CLASS:
        return facts.teaches_class_in(grant.unit_id)
    step = target.step
    if step is None:
        return False
    if reach is Reach.SEAL_FIELD:
        return step.role is PlanRole.SCHOOL_SEAL and target.unit_id == grant.unit_id
    # Reach.OWN_FIELD: the plan names this user for this field (Điều 10) and the user holds the
    # duty the field certifies — the subject in this class, the class itself, the school.
    if step.role is not OWN_FIELD_ROLE.get(grant.role) or step.assignee_user_id != facts.user_id:
        return False
    if step.role is PlanRole.SUBJECT_TEACHER:
        return facts.teaches_class_in(grant.unit_id) and step.subject in facts.taught_subjects
    if step.role is PlanRole.HOMEROOM_TEACHER:
        return facts.leads_class_in(grant.unit_id)
    return target.unit_id == grant.unit_id  # the principal's field, in their own school


def _sees(grant: _Grant, facts: _Facts) -> bool:
    target = facts.target
    if target.class_id is None and target.unit_id in facts.chain(grant.unit_id):
        return True  # one's own unit and the units above it are common knowledge
    return _reaches(VIEW[grant.role], grant, facts)


def can(session: Session, user: User, action: Action | str, target: Target) -> Decision:
    """Decide ``action`` on ``target`` for ``user`` from :data:`RULES` — allowed, forbidden or
    not visible, with the ground for it. Revoked roles and deactivated accounts count for
    nothing."""
    action = Action(action)
    grants = _active_grants(session, user)
    facts = _Facts(session, user.id, target)
    if not any(_sees(g, facts) for g in grants):
        return Decision(Outcome.NOT_VISIBLE, action, "not_visible",
                        "Không tìm thấy đối tượng trong phạm vi được giao.")
    rules = RULES[action]
    for grant in grants:
        if any(_reaches(reach, grant, facts) for reach in rules.get(grant.role, ())):
            return Decision(Outcome.ALLOWED, action, f"allowed_as_{grant.role}", "Được phép.", grant.role)
    return Decision(Outcome.FORBIDDEN, action, _forbidden_code(action, grants),
                    _forbidden_message(action))


def _forbidden_code(action: Action, grants: Sequence[_Grant]) -> str:
    if not any(g.role in RULES[action] for g in grants):
        return "role_lacks_action"
    return "outside_assignment"


_ACTION_VI = {
    Action.READ_RECORD: "xem hồ sơ này",
    Action.READ_PROGRESS: "xem tiến độ của đơn vị này",
    Action.IMPORT_BUNDLE: "nhập dữ liệu cho lớp này",
    Action.LOCK_BUNDLE: "khoá dữ liệu này",
    Action.SIGN_FIELD: "ký ô chữ ký này (Điều 10: không ai ký thay người khác)",
    Action.REJECT_FIELD: "từ chối ký ô chữ ký này",
    Action.REQUEST_CORRECTION: "đề nghị điều chỉnh dữ liệu này",
    Action.APPROVE_CORRECTION: "phê duyệt điều chỉnh (Điều 11.4: chỉ lãnh đạo nhà trường)",
    Action.WITNESS_CORRECTION: "chứng kiến việc điều chỉnh này",
    Action.LOCK_WINDOW: "đặt khung thời gian khoá/mở cho đơn vị này",
    Action.ISSUE_RECORD: "xuất hồ sơ cho học sinh",
    Action.MANAGE_USERS: "quản lý tài khoản của đơn vị này",
    Action.BIND_CERTIFICATE: "đăng ký chứng thư số cho đơn vị này",
    Action.READ_AUDIT: "xem nhật ký của đơn vị này",
}


def _forbidden_message(action: Action) -> str:
    return f"Bạn không có quyền {_ACTION_VI[action]}."
