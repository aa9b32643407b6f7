"""Records on their way: locked term data, documents, revisions, signature steps, windows, corrections.

A bundle is locked before anything is rendered from it (DESIGN §3); a document is one
official record, each revision one rendering of it from one locked bundle, each signature
step one field of that revision's plan. Lock windows say when data entry and signing are
open (Điều 13); a correction carries Điều 11.4's reason, approval and witnesses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hsdt.db.base import ID_TYPE, SHA256_HEX, Base, sha256_check
from hsdt.db.types import enum_type, utcnow
from hsdt.domain.bundles import bundle_json, parse_bundle
from hsdt.domain.canonical import canonical_json, sha256_hex
from hsdt.domain.errors import HsdtError
from hsdt.domain.plans import FieldAssignment, ResolvedPlan
from hsdt.domain.plans import Role as PlanRole
from hsdt.domain.schema import DataLock, Term, TermBundle

if TYPE_CHECKING:
    from hsdt.db.people import OrgUnit, SchoolClass, User
    from hsdt.db.remote import RemoteApproval


# --------------------------------------------------------------------------------------------
# Term data: bundles and their locks
# --------------------------------------------------------------------------------------------
class Bundle(Base):
    """A term-data bundle for one class and term, kept as the canonical JSON that was checked.

    The bytes and their SHA-256 never change (a correction is a new bundle that supersedes
    this one); importing the same content twice finds the existing row by its digest.
    """

    __tablename__ = "bundles"
    __frozen__ = ("sha256", "canonical_json", "school_id", "class_id", "school_year", "term",
                  "level", "revision", "supersedes_id")

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), index=True)
    school_year: Mapped[str] = mapped_column(String(9))
    term: Mapped[Term] = mapped_column(enum_type(Term, "term", 8))
    level: Mapped[str] = mapped_column(String(8))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX), unique=True)
    canonical_json: Mapped[bytes] = mapped_column(LargeBinary)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("bundles.id"), unique=True)
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)

    school: Mapped[OrgUnit] = relationship()
    school_class: Mapped[SchoolClass] = relationship()
    lock: Mapped[BundleLock | None] = relationship(back_populates="bundle")
    supersedes: Mapped[Bundle | None] = relationship(remote_side=[id])

    __table_args__ = (
        sha256_check("sha256"),
        UniqueConstraint("class_id", "term", "revision"),
        CheckConstraint("revision >= 1", name="revision_positive"),
        CheckConstraint("(revision = 1) = (supersedes_id IS NULL)", name="revision_chain"),
    )

    @classmethod
    def from_domain(cls, bundle: TermBundle, *, school: OrgUnit, school_class: SchoolClass,
                    revision: int = 1, supersedes: Bundle | None = None,
                    imported_by: User | None = None) -> Bundle:
        """Store a checked :class:`TermBundle` as the exact bytes its lock digest names.

        The school and class rows must be the ones the bundle names: filing a class's data
        under another class would show it to the wrong teachers.
        """
        if (school.code, school_class.name, school_class.school_year) != (
                bundle.school.code, bundle.class_.name, bundle.school_year):
            raise HsdtError(
                f"Gói dữ liệu của lớp {bundle.class_.name} ({bundle.school.code}, {bundle.school_year}) "
                f"không thể ghi vào lớp {school_class.name} ({school.code}, {school_class.school_year}).",
                code="bundle_misfiled")
        data = canonical_json(bundle_json(bundle))
        return cls(
            school=school, school_class=school_class, school_year=bundle.school_year,
            term=bundle.term, level=bundle.level, revision=revision, sha256=sha256_hex(data),
            canonical_json=data, supersedes=supersedes,
            imported_by_id=imported_by.id if imported_by else None,
        )

    def to_domain(self) -> TermBundle:
        """Read the bundle back, re-checking shape and rules (stored data is not trusted blindly)."""
        if sha256_hex(self.canonical_json) != self.sha256:
            raise HsdtError(f"Dữ liệu của gói {self.id} không khớp SHA-256 đã ghi.", code="bundle_tampered")
        return parse_bundle(json.loads(self.canonical_json))


class BundleLock(Base):
    """The lock of a bundle (Điều 14): permanent, one per bundle, never edited or removed."""

    __tablename__ = "bundle_locks"
    __append_only__ = True

    bundle_id: Mapped[int] = mapped_column(ForeignKey("bundles.id"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    locked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    locked_by_name: Mapped[str] = mapped_column(String(120))  # as written into every record
    locked_at: Mapped[datetime]

    bundle: Mapped[Bundle] = relationship(back_populates="lock")

    __table_args__ = (sha256_check("sha256"),)

    @classmethod
    def from_domain(cls, lock: DataLock, bundle: Bundle, locked_by: User | None = None) -> BundleLock:
        when = datetime.strptime(lock.locked_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return cls(bundle=bundle, sha256=lock.sha256, locked_by_id=locked_by.id if locked_by else None,
                   locked_by_name=lock.locked_by, locked_at=when)

    def to_domain(self) -> DataLock:
        return DataLock(sha256=self.sha256, locked_by=self.locked_by_name,
                        locked_at=self.locked_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


# --------------------------------------------------------------------------------------------
# Documents, their revisions and the signature steps of each revision's plan
# --------------------------------------------------------------------------------------------
class DocumentState(StrEnum):
    PENDING = "pending"  # cut from locked data, not rendered yet
    RENDERED = "rendered"
    CERTIFIED = "certified"  # the school's seal certified it (stage 0)
    SIGNING = "signing"  # collecting stage ``DocumentRevision.stage``
    SIGNED = "signed"  # every field signed
    SEALED = "sealed"  # B-LTA: DSS + document timestamp
    ARCHIVED = "archived"
    REJECTED = "rejected"  # a signer refused; data goes back for correction
    SUPERSEDED = "superseded"  # a correction replaced it; it stays archived


class Document(Base):
    """One official record (``record_id`` as :func:`hsdt.domain.records.record_id_for` makes it)."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    record_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    student_code: Mapped[str] = mapped_column(String(12), index=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    school_year: Mapped[str] = mapped_column(String(9))
    term: Mapped[Term] = mapped_column(enum_type(Term, "term", 8))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    school: Mapped[OrgUnit] = relationship()
    school_class: Mapped[SchoolClass] = relationship()
    revisions: Mapped[list[DocumentRevision]] = relationship(
        back_populates="document", order_by="DocumentRevision.revision")

    __table_args__ = (
        Index("ix_documents_school_year", "school_id", "school_year"),
        CheckConstraint("length(student_code) = 12", name="student_code_len"),
    )


class DocumentRevision(Base):
    """One rendering of a document from one locked bundle; a correction adds the next revision.

    ``pdf_sha256`` names the current bytes of this revision's PDF (it changes with every
    incremental signature; each step records the digest after its own signature).
    """

    __tablename__ = "document_revisions"
    __frozen__ = ("document_id", "revision", "bundle_id", "data_sha256", "supersedes_id")

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("bundles.id"), index=True)
    data_sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    pdf_sha256: Mapped[str | None] = mapped_column(String(SHA256_HEX))
    pdf_key: Mapped[str | None] = mapped_column(String(300))  # where the working PDF is kept
    state: Mapped[DocumentState] = mapped_column(
        enum_type(DocumentState, "document_state", 16), default=DocumentState.PENDING)
    stage: Mapped[int | None] = mapped_column(SmallInteger)  # the open stage while signing
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("document_revisions.id"), unique=True)
    correction_id: Mapped[int | None] = mapped_column(ForeignKey("corrections.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    document: Mapped[Document] = relationship(back_populates="revisions")
    bundle: Mapped[Bundle] = relationship()
    supersedes: Mapped[DocumentRevision | None] = relationship(remote_side=[id])
    correction: Mapped[Correction | None] = relationship()
    steps: Mapped[list[SignatureStep]] = relationship(
        back_populates="revision", order_by="(SignatureStep.stage, SignatureStep.field_name)")

    __table_args__ = (
        UniqueConstraint("document_id", "revision"),
        sha256_check("data_sha256"),
        sha256_check("pdf_sha256", nullable=True),
        CheckConstraint("revision >= 1", name="revision_positive"),
        CheckConstraint("(revision = 1) = (supersedes_id IS NULL)", name="revision_chain"),
        CheckConstraint("stage IS NULL OR stage >= 0", name="stage_nonneg"),
    )


class StepState(StrEnum):
    WAITING = "waiting"
    SIGNED = "signed"
    REJECTED = "rejected"


class SignatureStep(Base):
    """One field of a revision's resolved plan, and what became of it.

    ``assignee`` is the plan's own name for the signer (a school-local teacher id, or
    ``school:<code>`` for the seal); ``assignee_user_id`` is the account it resolves to
    through :class:`StaffCode`. ``cert_fingerprint`` must name a registered certificate.
    """

    __tablename__ = "signature_steps"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("document_revisions.id"))
    field_name: Mapped[str] = mapped_column(String(64))
    stage: Mapped[int] = mapped_column(SmallInteger)
    role: Mapped[PlanRole] = mapped_column(enum_type(PlanRole, "plan_role", 24))
    subject: Mapped[str | None] = mapped_column(String(40))
    assignee: Mapped[str] = mapped_column(String(64))
    assignee_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    state: Mapped[StepState] = mapped_column(enum_type(StepState, "step_state", 16),
                                             default=StepState.WAITING)
    signed_at: Mapped[datetime | None]
    cert_fingerprint: Mapped[str | None] = mapped_column(ForeignKey("certificates.fingerprint"))
    pdf_sha256: Mapped[str | None] = mapped_column(String(SHA256_HEX))  # after this signature
    acted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # who signed/rejected
    rejected_at: Mapped[datetime | None]
    reject_reason: Mapped[str | None] = mapped_column(Text)
    remote_note: Mapped[str | None] = mapped_column(Text)
    """Why the last remote signing of this field did not land (rejected on the phone,
    expired, provider fault): shown in the teacher's list until the field is signed."""

    revision: Mapped[DocumentRevision] = relationship(back_populates="steps")
    assignee_user: Mapped[User | None] = relationship(foreign_keys=[assignee_user_id])

    __table_args__ = (
        UniqueConstraint("revision_id", "field_name"),
        sha256_check("pdf_sha256", nullable=True),
        CheckConstraint("stage >= 0", name="stage_nonneg"),
        CheckConstraint("state <> 'signed' OR (signed_at IS NOT NULL AND cert_fingerprint IS NOT NULL)",
                        name="signed_has_evidence"),
        CheckConstraint("state <> 'rejected' OR (rejected_at IS NOT NULL AND reject_reason IS NOT NULL)",
                        name="rejected_has_reason"),
    )

    @classmethod
    def from_plan(cls, plan: ResolvedPlan, user_for: Mapping[str, int | None]) -> list[SignatureStep]:
        """One waiting step per field; ``user_for`` maps plan assignees to account ids."""
        return [cls._from_field(f, user_for.get(f.assignee)) for f in plan.fields]

    @classmethod
    def _from_field(cls, f: FieldAssignment, user_id: int | None) -> SignatureStep:
        return cls(field_name=f.name, stage=f.stage, role=f.role, subject=f.subject,
                   assignee=f.assignee, assignee_user_id=user_id, state=StepState.WAITING)


# --------------------------------------------------------------------------------------------
# Lock windows (Điều 6, 12–13) and corrections (Điều 11.4)
# --------------------------------------------------------------------------------------------
class WindowKind(StrEnum):
    DATA_ENTRY = "data_entry"
    SIGNING = "signing"


class LockWindow(Base):
    """A period during which data entry or signing is open, for one org unit or one class.

    A window on a unit covers every class beneath it; outside every covering window the data
    is locked (see :func:`hsdt.db.scope.open_window`).
    """

    __tablename__ = "lock_windows"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    kind: Mapped[WindowKind] = mapped_column(enum_type(WindowKind, "window_kind", 16))
    org_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id"), index=True)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"), index=True)
    school_year: Mapped[str] = mapped_column(String(9))
    term: Mapped[Term] = mapped_column(enum_type(Term, "term", 8))
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    org_unit: Mapped[OrgUnit | None] = relationship()
    school_class: Mapped[SchoolClass | None] = relationship()

    __table_args__ = (
        CheckConstraint("(org_unit_id IS NULL) <> (class_id IS NULL)", name="one_scope"),
        CheckConstraint("closes_at > opens_at", name="closes_after_opening"),
    )


class CorrectionState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REFUSED = "refused"
    APPLIED = "applied"  # the new bundle exists and new revisions supersede the old


class Correction(Base):
    """A request to change locked data: reason, the principal's decision, witnesses, result."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    bundle_id: Mapped[int] = mapped_column(ForeignKey("bundles.id"), index=True)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[CorrectionState] = mapped_column(
        enum_type(CorrectionState, "correction_state", 16), default=CorrectionState.REQUESTED)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    new_bundle_id: Mapped[int | None] = mapped_column(ForeignKey("bundles.id"), unique=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    bundle: Mapped[Bundle] = relationship(foreign_keys=[bundle_id])
    document: Mapped[Document | None] = relationship()
    new_bundle: Mapped[Bundle | None] = relationship(foreign_keys=[new_bundle_id])
    witnesses: Mapped[list[CorrectionWitness]] = relationship(back_populates="correction")

    __table_args__ = (
        CheckConstraint("length(reason) > 0", name="reason_given"),
        CheckConstraint("state NOT IN ('approved', 'applied') OR approved_by_id IS NOT NULL",
                        name="approved_has_approver"),
        CheckConstraint("state = 'requested' OR decided_at IS NOT NULL", name="decided_has_time"),
        CheckConstraint("state <> 'applied' OR new_bundle_id IS NOT NULL", name="applied_has_data"),
    )


class WitnessCapacity(StrEnum):
    BOARD_MEMBER = "board_member"  # thành viên Ban quản lý HSĐT
    HOMEROOM_TEACHER = "homeroom_teacher"


class CorrectionWitness(Base):
    """A person present when a correction was made (Điều 11.4)."""

    __tablename__ = "correction_witnesses"

    correction_id: Mapped[int] = mapped_column(ForeignKey("corrections.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    capacity: Mapped[WitnessCapacity] = mapped_column(enum_type(WitnessCapacity, "witness_capacity", 24))
    confirmed_at: Mapped[datetime | None]

    correction: Mapped[Correction] = relationship(back_populates="witnesses")
    user: Mapped[User] = relationship()




# --------------------------------------------------------------------------------------------
# Deferred signatures waiting for a client-held key (USB token, remote service)
# --------------------------------------------------------------------------------------------
class SignaturePreparation(Base):
    """One prepared signature (:class:`hsdt.signing.deferred.DeferredState` as bytes).

    Kept in the database, not in memory, so that a teacher's batch survives a restart of the
    service; ``completed_at`` is set once, when the signature lands, and a second completion
    of the same preparation is refused.
    """

    __tablename__ = "signature_preparations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("signature_steps.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    record_sha256: Mapped[str] = mapped_column(String(SHA256_HEX))
    cert_fingerprint: Mapped[str] = mapped_column(ForeignKey("certificates.fingerprint"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    state: Mapped[bytes] = mapped_column(LargeBinary)
    completed_at: Mapped[datetime | None]
    approval_id: Mapped[str | None] = mapped_column(ForeignKey("remote_approvals.id"), index=True)
    """The phone-approval batch this preparation was sent in, if any."""

    step: Mapped[SignatureStep] = relationship()
    approval: Mapped[RemoteApproval | None] = relationship(back_populates="preparations")

    __table_args__ = (sha256_check("record_sha256"),)
