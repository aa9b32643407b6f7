"""Remote signing: providers' accounts, batches waiting for phone approval, callbacks seen.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TS = sa.DateTime(timezone=True)
APPROVAL_STATES = ("submitting", "pending", "completed", "rejected", "expired", "failed")


def upgrade() -> None:
    op.create_table(
        "remote_accounts",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("credential_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_remote_accounts_user_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_accounts")),
        sa.UniqueConstraint("user_id", "provider", name=op.f("uq_remote_accounts_user_id_provider")),
    )
    op.create_index(op.f("ix_remote_accounts_user_id"), "remote_accounts", ["user_id"], unique=False)
    op.create_table(
        "remote_approvals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("cert_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("provider_ref", sa.String(length=200), nullable=True),
        sa.Column("state", sa.Enum(*APPROVAL_STATES, name="approval_state", native_enum=False,
                                   create_constraint=True, length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("expires_at", UTC_TS, nullable=False),
        sa.Column("next_poll_at", UTC_TS, nullable=False),
        sa.Column("poll_attempts", sa.Integer(), nullable=False),
        sa.Column("finished_at", UTC_TS, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_remote_approvals_user_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_approvals")),
    )
    op.create_index(op.f("ix_remote_approvals_user_id"), "remote_approvals", ["user_id"], unique=False)
    op.create_index(op.f("ix_remote_approvals_state"), "remote_approvals", ["state"], unique=False)
    op.create_table(
        "callback_receipts",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_id", name=op.f("pk_callback_receipts")),
    )
    with op.batch_alter_table("signature_steps") as batch:
        batch.add_column(sa.Column("remote_note", sa.Text(), nullable=True))
    with op.batch_alter_table("signature_preparations") as batch:
        batch.add_column(sa.Column("approval_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(op.f("fk_signature_preparations_approval_id"), "remote_approvals",
                                 ["approval_id"], ["id"])
        batch.create_index(op.f("ix_signature_preparations_approval_id"), ["approval_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("signature_preparations") as batch:
        batch.drop_index(op.f("ix_signature_preparations_approval_id"))
        batch.drop_constraint(op.f("fk_signature_preparations_approval_id"), type_="foreignkey")
        batch.drop_column("approval_id")
    with op.batch_alter_table("signature_steps") as batch:
        batch.drop_column("remote_note")
    op.drop_table("callback_receipts")
    op.drop_table("remote_approvals")
    op.drop_table("remote_accounts")
