"""Sign-in tokens and prepared signatures (the REST API and the signing agent).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("issued_at", UTC_TS, nullable=False),
        sa.Column("expires_at", UTC_TS, nullable=False),
        sa.Column("revoked_at", UTC_TS, nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.CheckConstraint("expires_at > issued_at", name=op.f("ck_api_tokens_expires_after_issue")),
        sa.CheckConstraint("length(token_sha256) = 64 AND token_sha256 = lower(token_sha256)",
                           name=op.f("ck_api_tokens_token_sha256_hex")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "signature_preparations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("step_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("record_sha256", sa.String(length=64), nullable=False),
        sa.Column("cert_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("expires_at", UTC_TS, nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("completed_at", UTC_TS, nullable=True),
        sa.CheckConstraint("length(record_sha256) = 64 AND record_sha256 = lower(record_sha256)",
                           name=op.f("ck_signature_preparations_record_sha256_hex")),
        sa.ForeignKeyConstraint(["cert_fingerprint"], ["certificates.fingerprint"],
                                name=op.f("fk_signature_preparations_cert_fingerprint")),
        sa.ForeignKeyConstraint(["step_id"], ["signature_steps.id"],
                                name=op.f("fk_signature_preparations_step_id")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_signature_preparations_user_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_preparations")),
    )
    op.create_index(op.f("ix_signature_preparations_step_id"), "signature_preparations", ["step_id"],
                    unique=False)
    op.create_index(op.f("ix_signature_preparations_user_id"), "signature_preparations", ["user_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_table("signature_preparations")
    op.drop_table("api_tokens")
