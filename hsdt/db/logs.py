"""What happened: the archive's index and events, and the service's audit log.

The archive's tables mirror :mod:`hsdt.archive.index` so the same index can live in
PostgreSQL; its events and the audit log are append-only (see :mod:`hsdt.db.base`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from hsdt.db.base import ID_TYPE, SHA256_HEX, Base, sha256_check
from hsdt.db.types import utcnow


# --------------------------------------------------------------------------------------------
# The archive's index (mirrors hsdt.archive.index, now shared with PostgreSQL)
# --------------------------------------------------------------------------------------------
class ArchiveEntry(Base):
    """A stored object, column for column :class:`hsdt.archive.index.ArchiveEntry`.

    Times stay the ISO strings the archive writes, so moving an index here loses nothing.
    """

    __tablename__ = "archive_entries"

    sha256: Mapped[str] = mapped_column(String(SHA256_HEX), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    student_code: Mapped[str] = mapped_column(String(12), index=True)
    school_code: Mapped[str] = mapped_column(String(40))
    school_year: Mapped[str] = mapped_column(String(9))
    revision: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(300))
    version_id: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    retain_until: Mapped[str] = mapped_column(String(40))
    stored_at: Mapped[str] = mapped_column(String(40))
    report_key: Mapped[str] = mapped_column(String(300))
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    superseded_by: Mapped[str | None] = mapped_column(String(SHA256_HEX))
    renewed_from: Mapped[str | None] = mapped_column(String(SHA256_HEX))
    document_revision_id: Mapped[int | None] = mapped_column(ForeignKey("document_revisions.id"),
                                                             index=True)

    __table_args__ = (
        Index("ix_archive_entries_school_year", "school_code", "school_year"),
        sha256_check("sha256"),
    )


class ArchiveEvent(Base):
    """A PREMIS-style event in an archived object's life (ingestion, fixity check, renewal…)."""

    __tablename__ = "archive_events"
    __append_only__ = True

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX), index=True)
    type: Mapped[str] = mapped_column(String(40))
    at: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    log_index: Mapped[int | None] = mapped_column(BigInteger)


# --------------------------------------------------------------------------------------------
# The audit log: append-only, at the ORM and in the database
# --------------------------------------------------------------------------------------------
class AuditEntry(Base):
    """Who did what, when, from where, why, to which object — and never edited afterwards.

    ``actor`` keeps the username (or ``system:<task>``) as it was, so the entry still reads
    right if the account is renamed; ``outcome`` records refusals too ("forbidden",
    "not_visible"), since a refused attempt to sign for another is itself evidence.
    """

    __tablename__ = "audit_log"
    __append_only__ = True

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, server_default=text("CURRENT_TIMESTAMP"),
                                         index=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="ok", server_default=text("'ok'"))
    ip: Mapped[str | None] = mapped_column(String(45))
    reason: Mapped[str | None] = mapped_column(Text)
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)


