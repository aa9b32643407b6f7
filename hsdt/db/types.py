"""Column types that behave the same on SQLite and PostgreSQL.

The suite runs on both, so every type here exists to remove a difference between them:
timestamps come back timezone-aware in UTC from either backend (SQLite keeps no zone),
enumerations are stored as their Vietnamese-neutral *values* with a CHECK constraint (not
as PostgreSQL enum types, which need their own migrations to grow), and JSON is JSONB
where the database has it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, TypeDecorator
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import JSONB


def utcnow() -> datetime:
    """Now, aware, in UTC — the only kind of time the database stores (DESIGN §3)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned aware.

    Naive datetimes are refused on the way in: a time without a zone in a signing or audit
    record is ambiguous by seven hours (Asia/Ho_Chi_Minh), and guessing is worse than failing.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"thời điểm không có múi giờ (naive datetime): {value!r}; hãy dùng UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite stores text; keep it zone-free and uniform so that it sorts correctly.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_type(enum_cls: type[Enum], name: str, length: int = 32) -> SAEnum:
    """A string column limited to an enumeration's values by a named CHECK constraint.

    Values, not member names, are stored ("homeroom_teacher", not "HOMEROOM_TEACHER"), so the
    rows read the same as the JSON the API and the plans speak.
    """
    return SAEnum(
        enum_cls, name=name, native_enum=False, create_constraint=True, length=length,
        values_callable=lambda e: [m.value for m in e], validate_strings=True,
    )


JSONDocument: Any = JSON().with_variant(JSONB(), "postgresql")
"""Arbitrary JSON details: ``JSONB`` on PostgreSQL (indexable), JSON text on SQLite."""
