"""Remote signing's state: who signs where, batches waiting on a phone, callbacks seen.

Kept in the database because a batch waiting for a teacher's approval outlives the process
that sent it: after a restart the service still knows which preparations the provider's
transaction covers, polls it, and completes them when the approval arrives.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hsdt.db.base import ID_TYPE, SHA256_HEX, Base
from hsdt.db.types import enum_type, utcnow

if TYPE_CHECKING:
    from hsdt.db.people import User
    from hsdt.db.records import SignaturePreparation


class RemoteAccount(Base):
    """A person's account at a remote-signing provider (set by the school's administrator).

    ``account`` is the provider's user id (CSC ``userID``, SmartCA ``user_id``);
    ``credential_id`` pins one credential when the account holds several.
    """

    __tablename__ = "remote_accounts"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(200))
    credential_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "provider"),)


class ApprovalState(StrEnum):
    SUBMITTING = "submitting"  # our row exists, the provider may not have the request yet
    PENDING = "pending"  # the provider has it; the teacher has not answered
    COMPLETED = "completed"  # approved, and every preparation completed or refused
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"  # the provider refused the submission


OPEN_APPROVAL_STATES = (ApprovalState.SUBMITTING, ApprovalState.PENDING)


class RemoteApproval(Base):
    """One batch sent for approval on the phone. ``id`` is the transaction id we chose."""

    __tablename__ = "remote_approvals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    account: Mapped[str] = mapped_column(String(200))
    cert_fingerprint: Mapped[str] = mapped_column(String(SHA256_HEX))
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[ApprovalState] = mapped_column(enum_type(ApprovalState, "approval_state", 16),
                                                 default=ApprovalState.SUBMITTING, index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    next_poll_at: Mapped[datetime]
    poll_attempts: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()
    preparations: Mapped[list[SignaturePreparation]] = relationship(back_populates="approval",
                                                                    order_by="SignaturePreparation.id")


class CallbackReceipt(Base):
    """A provider's callback event, kept so that the same event is never taken twice."""

    __tablename__ = "callback_receipts"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
