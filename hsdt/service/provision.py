"""Set up a school from its term data: the Sở → Phòng → school tree, accounts, roles, the
class with its homeroom teacher and subject assignments, staff codes, and certificates.

This is what a province's administrators do by hand (or from the sector database) before
the first bundle arrives; the demo and the tests do it from a sample bundle and the test
PKI, so that the service is exercised exactly as it would be after a real set-up.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from hsdt.api.auth import hash_password
from hsdt.db.models import (
    Certificate,
    OrgUnit,
    OrgUnitKind,
    RoleAssignment,
    RoleName,
    SchoolClass,
    StaffCode,
    TeachingAssignment,
    User,
)
from hsdt.domain.schema import TermBundle


def _code(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(w[0] for w in ascii_name.split() if w).upper()[:12] or "X"


def _get_or_add(session: Session, model: type, where: Mapping[str, object], **values: object) -> object:
    row = session.scalars(select(model).filter_by(**where)).first()
    if row is None:
        row = model(**where, **values)
        session.add(row)
        session.flush()
    return row


def username_for(school_code: str, staff_code: str) -> str:
    return f"{school_code}.{staff_code}".lower()


def provision_school(session: Session, bundle: TermBundle, *, password: str,
                     certificates: Mapping[str, bytes] | None = None,
                     seal_certificate: bytes | None = None) -> dict[str, User]:
    """Create (or find) everything the bundle names; returns accounts by staff code.

    ``certificates``: DER by staff code; ``seal_certificate``: the school seal's DER.

    Also creates the school's administrator (``<school>.qtht``), clerk (``<school>.vanthu``)
    and the Phòng's and Sở's administrators, all with ``password``.
    """
    s = bundle.school
    province = _get_or_add(session, OrgUnit, {"code": _code(s.province)}, kind=OrgUnitKind.PROVINCE,
                           name=s.province)
    district = _get_or_add(session, OrgUnit, {"code": f"{province.code}-{_code(s.district)}"},  # type: ignore[attr-defined]
                           kind=OrgUnitKind.DISTRICT, name=s.district, parent=province)
    school: OrgUnit = _get_or_add(session, OrgUnit, {"code": s.code}, kind=OrgUnitKind.SCHOOL,  # type: ignore[assignment]
                                  name=s.name, parent=district)
    pw = hash_password(password)
    users: dict[str, User] = {}

    def account(username: str, full_name: str, role: RoleName, unit: OrgUnit) -> User:
        user: User = _get_or_add(session, User, {"username": username}, full_name=full_name,  # type: ignore[assignment]
                                 password_hash=pw)
        _get_or_add(session, RoleAssignment, {"user_id": user.id, "role": role, "org_unit_id": unit.id,
                                              "revoked_at": None})
        return user

    for t in bundle.teachers:
        role = RoleName.PRINCIPAL if t.id == s.principal_id else RoleName.SUBJECT_TEACHER
        users[t.id] = account(username_for(s.code, t.id), t.full_name, role, school)
        _get_or_add(session, StaffCode, {"school_id": school.id, "code": t.id}, user_id=users[t.id].id)
    homeroom = users[bundle.class_.homeroom_teacher_id]
    account(homeroom.username, homeroom.full_name, RoleName.HOMEROOM_TEACHER, school)
    for a in bundle.assignments:
        account(users[a.teacher_id].username, users[a.teacher_id].full_name, RoleName.SUBJECT_TEACHER, school)
    users["qtht"] = account(username_for(s.code, "qtht"), f"Quản trị hệ thống {s.name}",
                            RoleName.SCHOOL_ADMIN, school)
    users["vanthu"] = account(username_for(s.code, "vanthu"), f"Văn thư {s.name}", RoleName.CLERK, school)
    users["phong"] = account(f"{district.code}.admin".lower(), f"Quản trị {s.district}",  # type: ignore[attr-defined]
                             RoleName.DISTRICT_ADMIN, district)  # type: ignore[arg-type]
    users["so"] = account(f"{province.code}.admin".lower(), f"Quản trị {s.province}",  # type: ignore[attr-defined]
                          RoleName.PROVINCIAL_ADMIN, province)  # type: ignore[arg-type]

    klass: SchoolClass = _get_or_add(  # type: ignore[assignment]
        session, SchoolClass, {"school_id": school.id, "school_year": bundle.school_year,
                               "name": bundle.class_.name},
        grade=bundle.class_.grade, homeroom_teacher_id=homeroom.id)
    for a in bundle.assignments:
        _get_or_add(session, TeachingAssignment, {"class_id": klass.id, "subject": a.subject},
                    teacher_id=users[a.teacher_id].id)
    for staff_code, der in (certificates or {}).items():
        if session.scalars(select(Certificate).where(Certificate.der == der)).first() is None:
            session.add(Certificate.from_der(der, user=users[staff_code]))
    if seal_certificate is not None and session.scalars(
            select(Certificate).where(Certificate.der == seal_certificate)).first() is None:
        session.add(Certificate.from_der(seal_certificate, school=school))
    session.flush()
    return users
