"""The organisation and its people: Sở → Phòng → school, accounts, roles, classes, certificates.

Điều 3 asks for tiered management, Điều 4–6 and 12–13 give each tier its administrators,
Điều 7–9 its teachers and leaders, Điều 10 makes each person answer for their own signature:
these tables are the data those articles act on. The rules that read them are in
:mod:`hsdt.db.scope`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hsdt.db.base import ID_TYPE, SHA256_HEX, Base, sha256_check
from hsdt.db.types import enum_type, utcnow


# --------------------------------------------------------------------------------------------
# Organisation: Sở → Phòng → school (Điều 3: tiered management)
# --------------------------------------------------------------------------------------------
class OrgUnitKind(StrEnum):
    PROVINCE = "province"  # Sở GD&ĐT
    DISTRICT = "district"  # Phòng GD&ĐT
    SCHOOL = "school"  # trường, trung tâm GDNN-GDTX


PARENT_KIND: dict[OrgUnitKind, OrgUnitKind | None] = {
    OrgUnitKind.PROVINCE: None,
    OrgUnitKind.DISTRICT: OrgUnitKind.PROVINCE,
    OrgUnitKind.SCHOOL: OrgUnitKind.DISTRICT,
}
"""The only shapes the tree may take; checked on flush (:mod:`hsdt.db.guards`)."""


class OrgUnit(Base):
    """A node of the organisation tree. ``code`` is the unit's code on the sector database."""

    __tablename__ = "org_units"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    kind: Mapped[OrgUnitKind] = mapped_column(enum_type(OrgUnitKind, "org_unit_kind", 16))
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped[OrgUnit | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[OrgUnit]] = relationship(back_populates="parent")

    __table_args__ = (
        CheckConstraint("(kind = 'province') = (parent_id IS NULL)", name="root_is_province"),
    )

    def __repr__(self) -> str:
        return f"<OrgUnit {self.kind} {self.code}>"


class User(Base):
    """A person with an account. ``password_hash`` is written by the sign-in code (argon2)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(120))
    national_id: Mapped[str | None] = mapped_column(String(12), unique=True)  # số định danh cá nhân
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("TRUE"))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    roles: Mapped[list[RoleAssignment]] = relationship(
        back_populates="user", foreign_keys="RoleAssignment.user_id")

    __table_args__ = (
        CheckConstraint("national_id IS NULL OR length(national_id) = 12", name="national_id_len"),
        CheckConstraint("failed_logins >= 0", name="failed_logins_nonneg"),
    )

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class StaffCode(Base):
    """The id a school's software gives a teacher (``Teacher.id`` in a bundle, e.g. ``GV001``).

    Bundles and resolved plans name people by these school-local ids; this table turns one into
    an account, per school, so that "GV001" of one school is never taken for another's.
    """

    __tablename__ = "staff_codes"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    code: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)

    school: Mapped[OrgUnit] = relationship()
    user: Mapped[User] = relationship()

    __table_args__ = (
        UniqueConstraint("school_id", "code"),
        UniqueConstraint("school_id", "user_id"),
    )


# --------------------------------------------------------------------------------------------
# Roles (Điều 4–13) and teaching assignments
# --------------------------------------------------------------------------------------------
class RoleName(StrEnum):
    PROVINCIAL_ADMIN = "provincial_admin"  # quản trị HSĐT của Sở
    DISTRICT_ADMIN = "district_admin"  # quản trị HSĐT của Phòng
    SCHOOL_ADMIN = "school_admin"  # quản trị hệ thống của trường
    PRINCIPAL = "principal"  # hiệu trưởng (lãnh đạo nhà trường)
    HOMEROOM_TEACHER = "homeroom_teacher"  # giáo viên chủ nhiệm
    SUBJECT_TEACHER = "subject_teacher"  # giáo viên bộ môn
    CLERK = "clerk"  # văn thư / lưu trữ


ROLE_UNIT_KIND: dict[RoleName, OrgUnitKind] = {
    RoleName.PROVINCIAL_ADMIN: OrgUnitKind.PROVINCE,
    RoleName.DISTRICT_ADMIN: OrgUnitKind.DISTRICT,
    RoleName.SCHOOL_ADMIN: OrgUnitKind.SCHOOL,
    RoleName.PRINCIPAL: OrgUnitKind.SCHOOL,
    RoleName.HOMEROOM_TEACHER: OrgUnitKind.SCHOOL,
    RoleName.SUBJECT_TEACHER: OrgUnitKind.SCHOOL,
    RoleName.CLERK: OrgUnitKind.SCHOOL,
}
"""The kind of unit each role is granted on; checked on flush."""


class RoleAssignment(Base):
    """A role held in one org unit. Revoked, not deleted, so that past decisions stay explained.

    A teacher's role is granted on the school; which classes and subjects they act on comes
    from :class:`TeachingAssignment` and :attr:`SchoolClass.homeroom_teacher_id`.
    """

    __tablename__ = "role_assignments"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[RoleName] = mapped_column(enum_type(RoleName, "role_name"))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"), index=True)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="roles", foreign_keys=[user_id])
    org_unit: Mapped[OrgUnit] = relationship()

    __table_args__ = (
        # One live grant of a role per unit; revoked grants stay as history.
        Index("uq_role_assignments_live", "user_id", "role", "org_unit_id", unique=True,
              sqlite_where=text("revoked_at IS NULL"), postgresql_where=text("revoked_at IS NULL")),
    )


class SchoolClass(Base):
    """A class in one school year (7A1 of 2025-2026 is not 7A1 of 2026-2027)."""

    __tablename__ = "classes"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    school_year: Mapped[str] = mapped_column(String(9))
    name: Mapped[str] = mapped_column(String(10))
    grade: Mapped[int] = mapped_column(SmallInteger)
    homeroom_teacher_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)

    school: Mapped[OrgUnit] = relationship()
    homeroom_teacher: Mapped[User | None] = relationship()
    teaching: Mapped[list[TeachingAssignment]] = relationship(back_populates="school_class")

    __table_args__ = (
        UniqueConstraint("school_id", "school_year", "name"),
        CheckConstraint("grade BETWEEN 1 AND 12", name="grade_range"),
        CheckConstraint("length(school_year) = 9", name="school_year_form"),
    )


class TeachingAssignment(Base):
    """Teacher × class × subject; the class carries the school year. One teacher per subject."""

    __tablename__ = "teaching_assignments"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    subject: Mapped[str] = mapped_column(String(40))

    teacher: Mapped[User] = relationship()
    school_class: Mapped[SchoolClass] = relationship(back_populates="teaching")

    __table_args__ = (UniqueConstraint("class_id", "subject"),)


# --------------------------------------------------------------------------------------------
# Certificates (Điều 10: nobody signs for another)
# --------------------------------------------------------------------------------------------
class Certificate(Base):
    """A signing certificate bound to exactly one owner: a person, or a school for its seal.

    The fingerprint is the SHA-256 of the DER, lower-case hex, as :mod:`hsdt.signing.keys`
    computes it; it is unique, so one certificate can never be bound to two owners.
    """

    __tablename__ = "certificates"
    # The owner may be corrected (a binding made to the wrong person); the certificate may not.
    __frozen__ = ("fingerprint", "der")

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(String(500))
    issuer: Mapped[str] = mapped_column(String(500))
    serial: Mapped[str] = mapped_column(String(64))  # hex
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"), index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("FALSE"))
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(String(200))
    registered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User | None] = relationship(foreign_keys=[user_id])
    school: Mapped[OrgUnit | None] = relationship()

    __table_args__ = (
        sha256_check("fingerprint"),
        CheckConstraint("(user_id IS NULL) <> (school_id IS NULL)", name="one_owner"),
        CheckConstraint("not_after > not_before", name="validity_order"),
        CheckConstraint("revoked = (revoked_at IS NOT NULL)", name="revoked_has_time"),
    )

    @classmethod
    def from_der(cls, der: bytes, *, user: User | None = None, school: OrgUnit | None = None,
                 registered_by: User | None = None) -> Certificate:
        """Read the facts from the certificate itself, so the row cannot disagree with it."""
        cert = x509.load_der_x509_certificate(der)
        return cls(
            fingerprint=hashlib.sha256(der).hexdigest(), der=der,
            subject=cert.subject.rfc4514_string()[:500], issuer=cert.issuer.rfc4514_string()[:500],
            serial=f"{cert.serial_number:x}", not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc, user=user, school=school,
            registered_by_id=registered_by.id if registered_by else None,
        )

    def usable_at(self, when: datetime) -> bool:
        """Bound, not revoked here, and inside its validity; the CA's status is checked elsewhere."""
        return not self.revoked and self.not_before <= when < self.not_after




# --------------------------------------------------------------------------------------------
# Sign-in tokens (the API's bearer tokens)
# --------------------------------------------------------------------------------------------
class ApiToken(Base):
    """A short-lived bearer token, stored only as its SHA-256 so a copy of the database signs
    nobody in. Revoked (sign-out, password change) rather than deleted, so the audit log's
    sessions stay explained."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(45))

    user: Mapped[User] = relationship()

    __table_args__ = (
        sha256_check("token_sha256"),
        CheckConstraint("expires_at > issued_at", name="expires_after_issue"),
    )
