"""Every table of the service, importable from one place.

Read in the order a record lives: :mod:`hsdt.db.people` (the organisation, accounts, roles,
classes, teaching assignments, certificates), :mod:`hsdt.db.records` (locked term data,
documents, revisions, signature steps, lock windows, corrections) and :mod:`hsdt.db.logs`
(the archive's index and events, the audit log). :mod:`hsdt.db.base` explains the two
declarations of immutability, which :mod:`hsdt.db.guards` and the initial migration enforce.

Times are UTC and aware (:class:`hsdt.db.types.UTCDateTime`). Rows are not deleted in normal
operation: people are deactivated, roles revoked, records superseded — history is the point
of the service.
"""

from __future__ import annotations

from hsdt.db import guards as _guards  # noqa: F401  (installs the ORM hooks)
from hsdt.db.base import NAMING_CONVENTION, Base
from hsdt.db.logs import ArchiveEntry, ArchiveEvent, AuditEntry
from hsdt.db.people import (
    PARENT_KIND,
    ROLE_UNIT_KIND,
    ApiToken,
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
from hsdt.db.records import (
    Bundle,
    BundleLock,
    Correction,
    CorrectionState,
    CorrectionWitness,
    Document,
    DocumentRevision,
    DocumentState,
    LockWindow,
    SignaturePreparation,
    SignatureStep,
    StepState,
    WindowKind,
    WitnessCapacity,
)
from hsdt.db.remote import OPEN_APPROVAL_STATES, ApprovalState, CallbackReceipt, RemoteAccount, RemoteApproval

APPEND_ONLY_TABLES: tuple[str, ...] = tuple(sorted(
    m.class_.__tablename__ for m in Base.registry.mappers if m.class_.__append_only__))
"""Tables whose rows are never updated or deleted."""

FROZEN_COLUMNS: dict[str, tuple[str, ...]] = dict(sorted(
    (m.class_.__tablename__, m.class_.__frozen__) for m in Base.registry.mappers if m.class_.__frozen__))
"""Per table, the columns that never change once a row exists."""

__all__ = [
    "APPEND_ONLY_TABLES",
    "FROZEN_COLUMNS",
    "NAMING_CONVENTION",
    "OPEN_APPROVAL_STATES",
    "PARENT_KIND",
    "ROLE_UNIT_KIND",
    "ApiToken",
    "ApprovalState",
    "ArchiveEntry",
    "ArchiveEvent",
    "AuditEntry",
    "Base",
    "Bundle",
    "BundleLock",
    "CallbackReceipt",
    "Certificate",
    "Correction",
    "CorrectionState",
    "CorrectionWitness",
    "Document",
    "DocumentRevision",
    "DocumentState",
    "LockWindow",
    "OrgUnit",
    "OrgUnitKind",
    "RemoteAccount",
    "RemoteApproval",
    "RoleAssignment",
    "RoleName",
    "SchoolClass",
    "SignaturePreparation",
    "SignatureStep",
    "StaffCode",
    "StepState",
    "TeachingAssignment",
    "User",
    "WindowKind",
    "WitnessCapacity",
]
