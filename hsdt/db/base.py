"""The declarative base every table shares, and the two declarations of immutability.

Two class attributes say what may never change; :mod:`hsdt.db.guards` enforces them in the
ORM and the initial migration installs the same rules as database triggers, so that raw SQL
is refused too:

- ``__append_only__ = True``: rows are inserted, never updated or deleted (audit log, archive
  events, bundle locks).
- ``__frozen__ = (...)``: these columns never change once the row exists (a locked bundle's
  bytes and digest, a revision's data digest, a certificate's DER and fingerprint).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, CheckConstraint, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase

from hsdt.db.types import JSONDocument, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}
"""Stable constraint names, so that later migrations (SQLite batch mode included) can name them."""

SHA256_HEX = 64
ID_TYPE = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER keys


class Base(DeclarativeBase):
    """Every table's base: shared naming, UTC timestamps, JSONB details, immutability flags."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
    }

    __append_only__: ClassVar[bool] = False
    __frozen__: ClassVar[tuple[str, ...]] = ()


def sha256_check(column: str, nullable: bool = False) -> CheckConstraint:
    """Lower-case hex of 64 characters, the form every digest in the project takes."""
    rule = f"length({column}) = 64 AND {column} = lower({column})"
    if nullable:
        rule = f"{column} IS NULL OR ({rule})"
    return CheckConstraint(rule, name=f"{column}_hex")


