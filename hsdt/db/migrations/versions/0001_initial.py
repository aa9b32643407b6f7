"""Initial schema: organisation, people, records, archive index, append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Creates every table of :mod:`hsdt.db.models` as it stood at this revision (written out here,
not imported, so later model changes cannot rewrite history), then the database-side
guards: triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on append-only
tables, and changes to frozen columns. PostgreSQL gets PL/pgSQL trigger functions, SQLite
``RAISE(ABORT, …)`` triggers; the messages start with ``hsdt:`` so that a caller can tell
them from other errors.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TS = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# The guards, as they stood at this revision (hsdt.db.models.APPEND_ONLY_TABLES / FROZEN_COLUMNS).
APPEND_ONLY = ("archive_events", "audit_log", "bundle_locks")
FROZEN = {
    "bundles": (
        "sha256",
        "canonical_json",
        "school_id",
        "class_id",
        "school_year",
        "term",
        "level",
        "revision",
        "supersedes_id",
    ),
    "certificates": ("fingerprint", "der"),
    "document_revisions": ("document_id", "revision", "bundle_id", "data_sha256", "supersedes_id"),
}
TABLES = (
    "archive_events",
    "org_units",
    "users",
    "audit_log",
    "certificates",
    "classes",
    "role_assignments",
    "staff_codes",
    "bundles",
    "documents",
    "lock_windows",
    "teaching_assignments",
    "bundle_locks",
    "corrections",
    "correction_witnesses",
    "document_revisions",
    "archive_entries",
    "signature_steps",
)
"""Creation order; dropped in reverse."""


def upgrade() -> None:
    op.create_table(
        "archive_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_events")),
    )
    op.create_index(op.f("ix_archive_events_sha256"), "archive_events", ["sha256"], unique=False)

    op.create_table(
        "org_units",
        sa.Column("id", ID, nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "province",
                "district",
                "school",
                name="org_unit_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.CheckConstraint(
            "(kind = 'province') = (parent_id IS NULL)", name=op.f("ck_org_units_root_is_province")
        ),
        sa.ForeignKeyConstraint(["parent_id"], ["org_units.id"], name=op.f("fk_org_units_parent_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_units")),
        sa.UniqueConstraint("code", name=op.f("uq_org_units_code")),
    )
    op.create_index(op.f("ix_org_units_parent_id"), "org_units", ["parent_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=120), nullable=False),
        sa.Column("national_id", sa.String(length=12), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("TRUE"), nullable=False),
        sa.Column("failed_logins", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("locked_until", UTC_TS, nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.CheckConstraint("failed_logins >= 0", name=op.f("ck_users_failed_logins_nonneg")),
        sa.CheckConstraint(
            "national_id IS NULL OR length(national_id) = 12", name=op.f("ck_users_national_id_len")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("national_id", name=op.f("uq_users_national_id")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", UTC_TS, server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False),
        sa.Column("actor_user_id", ID, nullable=True),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), server_default=sa.text("'ok'"), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("object_type", sa.String(length=40), nullable=True),
        sa.Column("object_id", sa.String(length=200), nullable=True),
        sa.Column("details", JSON_DOC, nullable=False),
        sa.ForeignKeyConstraint(["actor_user_id"], ["users.id"], name=op.f("fk_audit_log_actor_user_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_actor_user_id"), "audit_log", ["actor_user_id"], unique=False)
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"], unique=False)

    op.create_table(
        "certificates",
        sa.Column("id", ID, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("not_before", UTC_TS, nullable=False),
        sa.Column("not_after", UTC_TS, nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("school_id", ID, nullable=True),
        sa.Column("revoked", sa.Boolean(), server_default=sa.text("FALSE"), nullable=False),
        sa.Column("revoked_at", UTC_TS, nullable=True),
        sa.Column("revocation_reason", sa.String(length=200), nullable=True),
        sa.Column("registered_by_id", ID, nullable=True),
        sa.Column("registered_at", UTC_TS, nullable=False),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (school_id IS NULL)", name=op.f("ck_certificates_one_owner")
        ),
        sa.CheckConstraint(
            "length(fingerprint) = 64 AND fingerprint = lower(fingerprint)",
            name=op.f("ck_certificates_fingerprint_hex"),
        ),
        sa.CheckConstraint("not_after > not_before", name=op.f("ck_certificates_validity_order")),
        sa.CheckConstraint(
            "revoked = (revoked_at IS NOT NULL)", name=op.f("ck_certificates_revoked_has_time")
        ),
        sa.ForeignKeyConstraint(
            ["registered_by_id"], ["users.id"], name=op.f("fk_certificates_registered_by_id")
        ),
        sa.ForeignKeyConstraint(["school_id"], ["org_units.id"], name=op.f("fk_certificates_school_id")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_certificates_user_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_certificates_fingerprint")),
    )
    op.create_index(op.f("ix_certificates_school_id"), "certificates", ["school_id"], unique=False)
    op.create_index(op.f("ix_certificates_user_id"), "certificates", ["user_id"], unique=False)

    op.create_table(
        "classes",
        sa.Column("id", ID, nullable=False),
        sa.Column("school_id", ID, nullable=False),
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column("name", sa.String(length=10), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("homeroom_teacher_id", ID, nullable=True),
        sa.CheckConstraint("grade BETWEEN 1 AND 12", name=op.f("ck_classes_grade_range")),
        sa.CheckConstraint("length(school_year) = 9", name=op.f("ck_classes_school_year_form")),
        sa.ForeignKeyConstraint(
            ["homeroom_teacher_id"], ["users.id"], name=op.f("fk_classes_homeroom_teacher_id")
        ),
        sa.ForeignKeyConstraint(["school_id"], ["org_units.id"], name=op.f("fk_classes_school_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_classes")),
        sa.UniqueConstraint(
            "school_id", "school_year", "name", name=op.f("uq_classes_school_id_school_year_name")
        ),
    )
    op.create_index(op.f("ix_classes_homeroom_teacher_id"), "classes", ["homeroom_teacher_id"], unique=False)

    op.create_table(
        "role_assignments",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "provincial_admin",
                "district_admin",
                "school_admin",
                "principal",
                "homeroom_teacher",
                "subject_teacher",
                "clerk",
                name="role_name",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("org_unit_id", ID, nullable=False),
        sa.Column("granted_by_id", ID, nullable=True),
        sa.Column("granted_at", UTC_TS, nullable=False),
        sa.Column("revoked_at", UTC_TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["granted_by_id"], ["users.id"], name=op.f("fk_role_assignments_granted_by_id")
        ),
        sa.ForeignKeyConstraint(
            ["org_unit_id"], ["org_units.id"], name=op.f("fk_role_assignments_org_unit_id")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_role_assignments_user_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_assignments")),
    )
    op.create_index(
        op.f("ix_role_assignments_org_unit_id"), "role_assignments", ["org_unit_id"], unique=False
    )
    op.create_index(
        "uq_role_assignments_live",
        "role_assignments",
        ["user_id", "role", "org_unit_id"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )

    op.create_table(
        "staff_codes",
        sa.Column("id", ID, nullable=False),
        sa.Column("school_id", ID, nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["org_units.id"], name=op.f("fk_staff_codes_school_id")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_staff_codes_user_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_codes")),
        sa.UniqueConstraint("school_id", "code", name=op.f("uq_staff_codes_school_id_code")),
        sa.UniqueConstraint("school_id", "user_id", name=op.f("uq_staff_codes_school_id_user_id")),
    )
    op.create_index(op.f("ix_staff_codes_user_id"), "staff_codes", ["user_id"], unique=False)

    op.create_table(
        "bundles",
        sa.Column("id", ID, nullable=False),
        sa.Column("school_id", ID, nullable=False),
        sa.Column("class_id", ID, nullable=False),
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column(
            "term",
            sa.Enum("HK1", "CN", name="term", native_enum=False, create_constraint=True, length=8),
            nullable=False,
        ),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("canonical_json", sa.LargeBinary(), nullable=False),
        sa.Column("supersedes_id", ID, nullable=True),
        sa.Column("imported_by_id", ID, nullable=True),
        sa.Column("imported_at", UTC_TS, nullable=False),
        sa.CheckConstraint(
            "(revision = 1) = (supersedes_id IS NULL)", name=op.f("ck_bundles_revision_chain")
        ),
        sa.CheckConstraint(
            "length(sha256) = 64 AND sha256 = lower(sha256)", name=op.f("ck_bundles_sha256_hex")
        ),
        sa.CheckConstraint("revision >= 1", name=op.f("ck_bundles_revision_positive")),
        sa.ForeignKeyConstraint(["class_id"], ["classes.id"], name=op.f("fk_bundles_class_id")),
        sa.ForeignKeyConstraint(["imported_by_id"], ["users.id"], name=op.f("fk_bundles_imported_by_id")),
        sa.ForeignKeyConstraint(["school_id"], ["org_units.id"], name=op.f("fk_bundles_school_id")),
        sa.ForeignKeyConstraint(["supersedes_id"], ["bundles.id"], name=op.f("fk_bundles_supersedes_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundles")),
        sa.UniqueConstraint("class_id", "term", "revision", name=op.f("uq_bundles_class_id_term_revision")),
        sa.UniqueConstraint("sha256", name=op.f("uq_bundles_sha256")),
        sa.UniqueConstraint("supersedes_id", name=op.f("uq_bundles_supersedes_id")),
    )
    op.create_index(op.f("ix_bundles_class_id"), "bundles", ["class_id"], unique=False)

    op.create_table(
        "documents",
        sa.Column("id", ID, nullable=False),
        sa.Column("record_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("student_code", sa.String(length=12), nullable=False),
        sa.Column("school_id", ID, nullable=False),
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column(
            "term",
            sa.Enum("HK1", "CN", name="term", native_enum=False, create_constraint=True, length=8),
            nullable=False,
        ),
        sa.Column("class_id", ID, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.CheckConstraint("length(student_code) = 12", name=op.f("ck_documents_student_code_len")),
        sa.ForeignKeyConstraint(["class_id"], ["classes.id"], name=op.f("fk_documents_class_id")),
        sa.ForeignKeyConstraint(["school_id"], ["org_units.id"], name=op.f("fk_documents_school_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("record_id", name=op.f("uq_documents_record_id")),
    )
    op.create_index(op.f("ix_documents_class_id"), "documents", ["class_id"], unique=False)
    op.create_index("ix_documents_school_year", "documents", ["school_id", "school_year"], unique=False)
    op.create_index(op.f("ix_documents_student_code"), "documents", ["student_code"], unique=False)

    op.create_table(
        "lock_windows",
        sa.Column("id", ID, nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "data_entry",
                "signing",
                name="window_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("org_unit_id", ID, nullable=True),
        sa.Column("class_id", ID, nullable=True),
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column(
            "term",
            sa.Enum("HK1", "CN", name="term", native_enum=False, create_constraint=True, length=8),
            nullable=False,
        ),
        sa.Column("opens_at", UTC_TS, nullable=False),
        sa.Column("closes_at", UTC_TS, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by_id", ID, nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.CheckConstraint(
            "(org_unit_id IS NULL) <> (class_id IS NULL)", name=op.f("ck_lock_windows_one_scope")
        ),
        sa.CheckConstraint("closes_at > opens_at", name=op.f("ck_lock_windows_closes_after_opening")),
        sa.ForeignKeyConstraint(["class_id"], ["classes.id"], name=op.f("fk_lock_windows_class_id")),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_lock_windows_created_by_id")),
        sa.ForeignKeyConstraint(["org_unit_id"], ["org_units.id"], name=op.f("fk_lock_windows_org_unit_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lock_windows")),
    )
    op.create_index(op.f("ix_lock_windows_class_id"), "lock_windows", ["class_id"], unique=False)
    op.create_index(op.f("ix_lock_windows_org_unit_id"), "lock_windows", ["org_unit_id"], unique=False)

    op.create_table(
        "teaching_assignments",
        sa.Column("id", ID, nullable=False),
        sa.Column("teacher_id", ID, nullable=False),
        sa.Column("class_id", ID, nullable=False),
        sa.Column("subject", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["class_id"], ["classes.id"], name=op.f("fk_teaching_assignments_class_id")),
        sa.ForeignKeyConstraint(
            ["teacher_id"], ["users.id"], name=op.f("fk_teaching_assignments_teacher_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teaching_assignments")),
        sa.UniqueConstraint("class_id", "subject", name=op.f("uq_teaching_assignments_class_id_subject")),
    )
    op.create_index(
        op.f("ix_teaching_assignments_teacher_id"), "teaching_assignments", ["teacher_id"], unique=False
    )

    op.create_table(
        "bundle_locks",
        sa.Column("bundle_id", ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("locked_by_id", ID, nullable=True),
        sa.Column("locked_by_name", sa.String(length=120), nullable=False),
        sa.Column("locked_at", UTC_TS, nullable=False),
        sa.CheckConstraint(
            "length(sha256) = 64 AND sha256 = lower(sha256)", name=op.f("ck_bundle_locks_sha256_hex")
        ),
        sa.ForeignKeyConstraint(["bundle_id"], ["bundles.id"], name=op.f("fk_bundle_locks_bundle_id")),
        sa.ForeignKeyConstraint(["locked_by_id"], ["users.id"], name=op.f("fk_bundle_locks_locked_by_id")),
        sa.PrimaryKeyConstraint("bundle_id", name=op.f("pk_bundle_locks")),
    )
    op.create_table(
        "corrections",
        sa.Column("id", ID, nullable=False),
        sa.Column("bundle_id", ID, nullable=False),
        sa.Column("document_id", ID, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "requested",
                "approved",
                "refused",
                "applied",
                name="correction_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("requested_by_id", ID, nullable=False),
        sa.Column("requested_at", UTC_TS, nullable=False),
        sa.Column("approved_by_id", ID, nullable=True),
        sa.Column("decided_at", UTC_TS, nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("new_bundle_id", ID, nullable=True),
        sa.Column("details", JSON_DOC, nullable=False),
        sa.CheckConstraint(
            "state <> 'applied' OR new_bundle_id IS NOT NULL", name=op.f("ck_corrections_applied_has_data")
        ),
        sa.CheckConstraint(
            "state = 'requested' OR decided_at IS NOT NULL", name=op.f("ck_corrections_decided_has_time")
        ),
        sa.CheckConstraint(
            "state NOT IN ('approved', 'applied') OR approved_by_id IS NOT NULL",
            name=op.f("ck_corrections_approved_has_approver"),
        ),
        sa.CheckConstraint("length(reason) > 0", name=op.f("ck_corrections_reason_given")),
        sa.ForeignKeyConstraint(["approved_by_id"], ["users.id"], name=op.f("fk_corrections_approved_by_id")),
        sa.ForeignKeyConstraint(["bundle_id"], ["bundles.id"], name=op.f("fk_corrections_bundle_id")),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name=op.f("fk_corrections_document_id")),
        sa.ForeignKeyConstraint(["new_bundle_id"], ["bundles.id"], name=op.f("fk_corrections_new_bundle_id")),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["users.id"], name=op.f("fk_corrections_requested_by_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_corrections")),
        sa.UniqueConstraint("new_bundle_id", name=op.f("uq_corrections_new_bundle_id")),
    )
    op.create_index(op.f("ix_corrections_bundle_id"), "corrections", ["bundle_id"], unique=False)
    op.create_index(op.f("ix_corrections_document_id"), "corrections", ["document_id"], unique=False)

    op.create_table(
        "correction_witnesses",
        sa.Column("correction_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column(
            "capacity",
            sa.Enum(
                "board_member",
                "homeroom_teacher",
                name="witness_capacity",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("confirmed_at", UTC_TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["correction_id"], ["corrections.id"], name=op.f("fk_correction_witnesses_correction_id")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_correction_witnesses_user_id")),
        sa.PrimaryKeyConstraint("correction_id", "user_id", name=op.f("pk_correction_witnesses")),
    )
    op.create_table(
        "document_revisions",
        sa.Column("id", ID, nullable=False),
        sa.Column("document_id", ID, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("bundle_id", ID, nullable=False),
        sa.Column("data_sha256", sa.String(length=64), nullable=False),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("pdf_key", sa.String(length=300), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "rendered",
                "certified",
                "signing",
                "signed",
                "sealed",
                "archived",
                "rejected",
                "superseded",
                name="document_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("stage", sa.SmallInteger(), nullable=True),
        sa.Column("supersedes_id", ID, nullable=True),
        sa.Column("correction_id", ID, nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.CheckConstraint(
            "(revision = 1) = (supersedes_id IS NULL)", name=op.f("ck_document_revisions_revision_chain")
        ),
        sa.CheckConstraint(
            "length(data_sha256) = 64 AND data_sha256 = lower(data_sha256)",
            name=op.f("ck_document_revisions_data_sha256_hex"),
        ),
        sa.CheckConstraint(
            "pdf_sha256 IS NULL OR (length(pdf_sha256) = 64 AND pdf_sha256 = lower(pdf_sha256))",
            name=op.f("ck_document_revisions_pdf_sha256_hex"),
        ),
        sa.CheckConstraint("revision >= 1", name=op.f("ck_document_revisions_revision_positive")),
        sa.CheckConstraint("stage IS NULL OR stage >= 0", name=op.f("ck_document_revisions_stage_nonneg")),
        sa.ForeignKeyConstraint(["bundle_id"], ["bundles.id"], name=op.f("fk_document_revisions_bundle_id")),
        sa.ForeignKeyConstraint(
            ["correction_id"], ["corrections.id"], name=op.f("fk_document_revisions_correction_id")
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_document_revisions_document_id")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["document_revisions.id"], name=op.f("fk_document_revisions_supersedes_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_revisions")),
        sa.UniqueConstraint(
            "document_id", "revision", name=op.f("uq_document_revisions_document_id_revision")
        ),
        sa.UniqueConstraint("supersedes_id", name=op.f("uq_document_revisions_supersedes_id")),
    )
    op.create_index(
        op.f("ix_document_revisions_bundle_id"), "document_revisions", ["bundle_id"], unique=False
    )
    op.create_index(
        op.f("ix_document_revisions_correction_id"), "document_revisions", ["correction_id"], unique=False
    )

    op.create_table(
        "archive_entries",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("student_code", sa.String(length=12), nullable=False),
        sa.Column("school_code", sa.String(length=40), nullable=False),
        sa.Column("school_year", sa.String(length=9), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("version_id", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("retain_until", sa.String(length=40), nullable=False),
        sa.Column("stored_at", sa.String(length=40), nullable=False),
        sa.Column("report_key", sa.String(length=300), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("superseded_by", sa.String(length=64), nullable=True),
        sa.Column("renewed_from", sa.String(length=64), nullable=True),
        sa.Column("document_revision_id", ID, nullable=True),
        sa.CheckConstraint(
            "length(sha256) = 64 AND sha256 = lower(sha256)", name=op.f("ck_archive_entries_sha256_hex")
        ),
        sa.ForeignKeyConstraint(
            ["document_revision_id"],
            ["document_revisions.id"],
            name=op.f("fk_archive_entries_document_revision_id"),
        ),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_archive_entries")),
        sa.UniqueConstraint("log_index", name=op.f("uq_archive_entries_log_index")),
    )
    op.create_index(
        op.f("ix_archive_entries_document_revision_id"),
        "archive_entries",
        ["document_revision_id"],
        unique=False,
    )
    op.create_index(op.f("ix_archive_entries_record_id"), "archive_entries", ["record_id"], unique=False)
    op.create_index(
        "ix_archive_entries_school_year", "archive_entries", ["school_code", "school_year"], unique=False
    )
    op.create_index(
        op.f("ix_archive_entries_student_code"), "archive_entries", ["student_code"], unique=False
    )

    op.create_table(
        "signature_steps",
        sa.Column("id", ID, nullable=False),
        sa.Column("revision_id", ID, nullable=False),
        sa.Column("field_name", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.SmallInteger(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "school_seal",
                "subject_teacher",
                "homeroom_teacher",
                "principal",
                name="plan_role",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("subject", sa.String(length=40), nullable=True),
        sa.Column("assignee", sa.String(length=64), nullable=False),
        sa.Column("assignee_user_id", ID, nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "waiting",
                "signed",
                "rejected",
                name="step_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("signed_at", UTC_TS, nullable=True),
        sa.Column("cert_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("acted_by_id", ID, nullable=True),
        sa.Column("rejected_at", UTC_TS, nullable=True),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state <> 'rejected' OR (rejected_at IS NOT NULL AND reject_reason IS NOT NULL)",
            name=op.f("ck_signature_steps_rejected_has_reason"),
        ),
        sa.CheckConstraint(
            "state <> 'signed' OR (signed_at IS NOT NULL AND cert_fingerprint IS NOT NULL)",
            name=op.f("ck_signature_steps_signed_has_evidence"),
        ),
        sa.CheckConstraint(
            "pdf_sha256 IS NULL OR (length(pdf_sha256) = 64 AND pdf_sha256 = lower(pdf_sha256))",
            name=op.f("ck_signature_steps_pdf_sha256_hex"),
        ),
        sa.CheckConstraint("stage >= 0", name=op.f("ck_signature_steps_stage_nonneg")),
        sa.ForeignKeyConstraint(["acted_by_id"], ["users.id"], name=op.f("fk_signature_steps_acted_by_id")),
        sa.ForeignKeyConstraint(
            ["assignee_user_id"], ["users.id"], name=op.f("fk_signature_steps_assignee_user_id")
        ),
        sa.ForeignKeyConstraint(
            ["cert_fingerprint"],
            ["certificates.fingerprint"],
            name=op.f("fk_signature_steps_cert_fingerprint"),
        ),
        sa.ForeignKeyConstraint(
            ["revision_id"], ["document_revisions.id"], name=op.f("fk_signature_steps_revision_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_steps")),
        sa.UniqueConstraint(
            "revision_id", "field_name", name=op.f("uq_signature_steps_revision_id_field_name")
        ),
    )
    op.create_index(
        op.f("ix_signature_steps_assignee_user_id"), "signature_steps", ["assignee_user_id"], unique=False
    )

    _install_guards()


def downgrade() -> None:
    _remove_guards()
    for table in reversed(TABLES):
        op.drop_table(table)


def _install_guards() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION hsdt_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'hsdt: % is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'raise_exception';
            END $$""")
        op.execute("""
            CREATE FUNCTION hsdt_refuse_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'hsdt: frozen columns of % cannot change', TG_TABLE_NAME
                    USING ERRCODE = 'raise_exception';
            END $$""")
        for table in APPEND_ONLY:
            # Statement-level, so even an UPDATE that matches no row is refused, and TRUNCATE too.
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION hsdt_refuse_change()"
            )
        for table, columns in FROZEN.items():
            changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
            op.execute(
                f"CREATE TRIGGER {table}_frozen BEFORE UPDATE OF {', '.join(columns)} "
                f"ON {table} FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION hsdt_refuse_frozen()"
            )
        return
    for table in APPEND_ONLY:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'hsdt: {table} is append-only: {verb} refused'); END"
            )
    for table, columns in FROZEN.items():
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
        op.execute(
            f"CREATE TRIGGER {table}_frozen BEFORE UPDATE OF {', '.join(columns)} ON {table} "
            f"FOR EACH ROW WHEN {changed} "
            f"BEGIN SELECT RAISE(ABORT, 'hsdt: frozen columns of {table} cannot change'); END"
        )


def _remove_guards() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    for table in FROZEN:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_frozen" + (f" ON {table}" if postgres else ""))
    for table in APPEND_ONLY:
        names = [f"{table}_append_only"] if postgres else [f"{table}_no_update", f"{table}_no_delete"]
        for name in names:
            op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS hsdt_refuse_change()")
        op.execute("DROP FUNCTION IF EXISTS hsdt_refuse_frozen()")
