"""ORM-side enforcement of what may never change; the database triggers are the backstop.

Why both: the ORM hooks fail early with a message a person can read, before anything
reaches the database; the triggers (installed by the initial migration) also refuse raw SQL
and any other client. Three hooks cover the ORM's paths:

1. a mapper ``before_update`` / ``before_delete`` on every model refuses changes to an
   append-only row and to a ``__frozen__`` column at flush time;
2. an engine-wide ``before_execute`` refuses any Core or ORM-bulk ``UPDATE``/``DELETE``
   statement aimed at an append-only table (``session.execute(update(AuditEntry))``,
   ``bulk_update_mappings``…), which bypass the mapper hooks;
3. a session ``before_flush`` checks the shapes that a CHECK constraint cannot see across
   rows: the tree is Sở → Phòng → school, each role sits on the kind of unit it belongs to,
   classes belong to schools and records to the school of their class, a lock repeats its
   bundle's digest.

Raw SQL text is left to the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Delete, Update, event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapper, Session, UOWTransaction

from hsdt.db import logs as _logs  # noqa: F401  (registers the append-only log tables)
from hsdt.db.base import Base
from hsdt.db.people import (
    PARENT_KIND,
    ROLE_UNIT_KIND,
    Certificate,
    OrgUnit,
    OrgUnitKind,
    RoleAssignment,
    SchoolClass,
    StaffCode,
)
from hsdt.db.records import Bundle, BundleLock, Document, LockWindow
from hsdt.domain.errors import HsdtError


class ImmutableRowError(HsdtError):
    """An append-only row or a frozen column was about to change."""

    code = "immutable_row"


class InvalidShapeError(HsdtError):
    """Rows that would make the organisation or its data inconsistent."""

    code = "invalid_shape"


def _append_only_tables() -> frozenset[str]:
    return frozenset(m.class_.__tablename__ for m in Base.registry.mappers if m.class_.__append_only__)


def _refused(table: str, what: str) -> ImmutableRowError:
    return ImmutableRowError(
        f"Bảng {table} chỉ được ghi thêm: không được {what} dòng đã có "
        "(nhật ký và khoá dữ liệu là bằng chứng, không sửa được).")


# 1. mapper hooks -----------------------------------------------------------------------------
@event.listens_for(Base, "before_update", propagate=True)
def _refuse_update(mapper: Mapper[Any], connection: Connection, target: Base) -> None:
    cls = type(target)
    if cls.__append_only__:
        raise _refused(cls.__tablename__, "sửa")
    if cls.__frozen__:
        state = inspect(target)
        changed = [name for name in cls.__frozen__ if state.attrs[name].history.has_changes()]
        if changed:
            raise ImmutableRowError(
                f"Không được thay đổi {', '.join(changed)} của {cls.__tablename__} đã ghi; "
                "muốn sửa dữ liệu đã khoá phải lập yêu cầu điều chỉnh (Điều 11.4).")


@event.listens_for(Base, "before_delete", propagate=True)
def _refuse_delete(mapper: Mapper[Any], connection: Connection, target: Base) -> None:
    if type(target).__append_only__:
        raise _refused(type(target).__tablename__, "xoá")


# 2. statements that bypass the mapper hooks ------------------------------------------------
@event.listens_for(Engine, "before_execute")
def _refuse_bulk(conn: Connection, clauseelement: Any, multiparams: Any, params: Any,
                 execution_options: Any) -> None:
    if isinstance(clauseelement, Update | Delete):
        table = clauseelement.table
        name = getattr(table, "name", None) or getattr(getattr(table, "element", None), "name", None)
        if name in _append_only_tables():
            raise _refused(str(name), "sửa" if isinstance(clauseelement, Update) else "xoá")


# 3. shapes across rows -----------------------------------------------------------------------
@event.listens_for(Session, "before_flush")
def _check_shapes(session: Session, flush_context: UOWTransaction, instances: Iterable[Any] | None) -> None:
    for obj in [*session.new, *session.dirty]:
        if isinstance(obj, OrgUnit):
            _check_unit(obj)
        elif isinstance(obj, RoleAssignment):
            unit = obj.org_unit or session.get(OrgUnit, obj.org_unit_id)
            if unit is not None and unit.kind is not ROLE_UNIT_KIND[obj.role]:
                raise InvalidShapeError(
                    f"Vai trò {obj.role} chỉ được giao trên đơn vị loại {ROLE_UNIT_KIND[obj.role]}, "
                    f"không phải {unit.kind} ({unit.code}).")
        elif isinstance(obj, SchoolClass | StaffCode):
            _check_school(session, obj, obj.school_id, obj.school)
        elif isinstance(obj, Document | Bundle):
            _check_school(session, obj, obj.school_id, obj.school)
            _check_class_in_school(session, obj)
        elif isinstance(obj, Certificate) and (obj.school is not None or obj.school_id is not None):
            _check_school(session, obj, obj.school_id, obj.school)
        elif isinstance(obj, BundleLock):
            bundle = obj.bundle or session.get(Bundle, obj.bundle_id)
            if bundle is not None and bundle.sha256 != obj.sha256:
                raise InvalidShapeError("Khoá dữ liệu phải mang đúng SHA-256 của gói dữ liệu được khoá.")
        elif isinstance(obj, LockWindow) and obj.org_unit_id is None and obj.org_unit is None \
                and obj.class_id is None and obj.school_class is None:
            raise InvalidShapeError("Khung thời gian khoá/mở phải gắn với một đơn vị hoặc một lớp.")


def _check_unit(unit: OrgUnit) -> None:
    want = PARENT_KIND[unit.kind]
    parent = unit.parent
    if want is None and (parent is not None or unit.parent_id is not None):
        raise InvalidShapeError(f"Sở ({unit.code}) là gốc của cây đơn vị, không có đơn vị cấp trên.")
    if want is not None and parent is not None and parent.kind is not want:
        raise InvalidShapeError(
            f"Đơn vị {unit.code} loại {unit.kind} phải trực thuộc đơn vị loại {want}, "
            f"không phải {parent.kind} ({parent.code}).")


def _check_class_in_school(session: Session, obj: Document | Bundle) -> None:
    """A record's school and class must agree: scope reads both, and they must say the same."""
    klass = obj.school_class or session.get(SchoolClass, obj.class_id)
    school = obj.school or session.get(OrgUnit, obj.school_id)
    if klass is not None and school is not None and (klass.school or session.get(OrgUnit, klass.school_id)) \
            is not school:
        raise InvalidShapeError(f"{type(obj).__name__}: lớp {klass.name} không thuộc trường {school.code}.")


def _check_school(session: Session, obj: Any, school_id: int | None, school: OrgUnit | None) -> None:
    unit = school if school is not None else (session.get(OrgUnit, school_id) if school_id else None)
    if unit is not None and unit.kind is not OrgUnitKind.SCHOOL:
        raise InvalidShapeError(
            f"{type(obj).__name__} phải thuộc một trường, không phải {unit.kind} ({unit.code}).")
