"""The models round-trip on both databases, and the constraints that keep the data honest hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from hsdt.db.bindings import bindings_for_school, staff_user_ids
from hsdt.db.guards import ImmutableRowError, InvalidShapeError
from hsdt.db.models import (
    ArchiveEntry,
    Bundle,
    BundleLock,
    Certificate,
    Correction,
    CorrectionState,
    CorrectionWitness,
    Document,
    DocumentRevision,
    DocumentState,
    LockWindow,
    OrgUnit,
    OrgUnitKind,
    RoleAssignment,
    RoleName,
    SchoolClass,
    SignatureStep,
    StepState,
    User,
    WindowKind,
    WitnessCapacity,
)
from hsdt.domain.bundles import lock_bundle
from hsdt.domain.errors import HsdtError
from hsdt.domain.records import record_for
from hsdt.domain.sample import sample_bundle
from hsdt.domain.schema import Term
from hsdt.workflow import plan_of

from .db_world import T0, build_world, self_signed_der

T = TypeVar("T")


def _reload(session: Session, obj: T) -> T:
    """Forget everything the session knows and read the row back from the database."""
    session.flush()
    ident = session.identity_key(instance=obj)[1]
    session.expunge_all()
    fresh = session.get(type(obj), ident)
    assert fresh is not None
    return fresh


def test_world_round_trips(session: Session) -> None:
    w = build_world(session)
    doc = _reload(session, w.documents["own"])
    assert doc.school.code == "LC-THCS-001"
    assert doc.school.parent is not None and doc.school.parent.code == "LC-TP"
    assert doc.school_class.homeroom_teacher is not None
    assert doc.school_class.homeroom_teacher.username == "home"
    assert doc.term is Term.CN
    [rev] = doc.revisions
    assert rev.state is DocumentState.PENDING and rev.bundle.lock is not None
    assert rev.bundle.lock.locked_at == T0 and rev.bundle.lock.locked_at.tzinfo is not None
    assert [s.field_name for s in rev.steps] == ["seal", "subject_GDCD", "subject_NGU_VAN", "subject_TOAN",
                                                "homeroom", "principal"]
    assert {s.state for s in rev.steps} == {StepState.WAITING}
    assert {t.subject for t in doc.school_class.teaching} == {"TOAN", "NGU_VAN"}


def test_locked_sample_bundle_round_trips(session: Session) -> None:
    """A real bundle, its lock and a record's plan go in and come back out unchanged."""
    bundle = sample_bundle(seed=7, students=2)
    locked = lock_bundle(bundle, "Hoàng Văn Thụ", now=datetime(2026, 5, 30, 8, 15, tzinfo=UTC))
    province = OrgUnit(kind=OrgUnitKind.PROVINCE, code="LC", name=bundle.school.province)
    district = OrgUnit(kind=OrgUnitKind.DISTRICT, code="LC-TP", name=bundle.school.district, parent=province)
    school = OrgUnit(kind=OrgUnitKind.SCHOOL, code=bundle.school.code, name=bundle.school.name,
                     parent=district)
    principal = User(username="hvthu", full_name="Hoàng Văn Thụ", national_id="010075001234")
    klass = SchoolClass(school=school, school_year=bundle.school_year, name=bundle.class_.name,
                        grade=bundle.class_.grade)
    other = SchoolClass(school=school, school_year=bundle.school_year, name="9A9", grade=9)
    session.add_all([province, district, school, principal, klass, other])
    session.flush()
    with pytest.raises(HsdtError, match="9A9"):
        Bundle.from_domain(bundle, school=school, school_class=other)
    row = Bundle.from_domain(bundle, school=school, school_class=klass)
    session.add(row)
    session.add(BundleLock.from_domain(locked.lock, row, locked_by=principal))
    assert row.sha256 == locked.lock.sha256

    record = record_for(locked, bundle.students[0])
    doc = Document(record_id=record.record_id, kind=record.kind, student_code=record.student.code,
                   school=school, school_year=bundle.school_year, term=bundle.term, school_class=klass)
    rev = DocumentRevision(document=doc, bundle=row, data_sha256=record.data_sha256)
    staff = {"GV001": principal.id}
    rev.steps = SignatureStep.from_plan(plan_of(record), staff)
    session.add_all([doc, rev])

    fresh = _reload(session, row)
    assert fresh.to_domain() == bundle
    assert fresh.lock is not None and fresh.lock.to_domain() == locked.lock
    fresh_rev = session.scalars(
        select(DocumentRevision).where(DocumentRevision.data_sha256 == record.data_sha256)).one()
    plan = plan_of(record)
    assert [(s.field_name, s.stage, s.role, s.subject, s.assignee) for s in
            sorted(fresh_rev.steps, key=lambda s: (s.stage, s.field_name))] == \
        sorted(((f.name, f.stage, f.role, f.subject, f.assignee) for f in plan.fields),
               key=lambda t: (t[1], t[0]))
    principal_step = next(s for s in fresh_rev.steps if s.field_name == "principal")
    assert principal_step.assignee_user_id == principal.id


def test_signing_and_correction_round_trip(session: Session) -> None:
    w = build_world(session)
    cert = Certificate.from_der(self_signed_der("Giáo viên Toán"), user=w.users["subj"])
    session.add(cert)
    step = w.steps["subject"]
    step.state, step.signed_at, step.cert_fingerprint = StepState.SIGNED, T0, cert.fingerprint
    step.acted_by_id, step.pdf_sha256 = w.users["subj"].id, "ab" * 32
    correction = w.corrections["own"]
    correction.witnesses = [
        CorrectionWitness(user=w.users["sadm"], capacity=WitnessCapacity.BOARD_MEMBER, confirmed_at=T0),
        CorrectionWitness(user=w.users["home"], capacity=WitnessCapacity.HOMEROOM_TEACHER),
    ]
    new_data = b'{"corrected":true}'
    new_bundle = Bundle(school=w.units["school"], school_class=w.classes["own"], school_year="2025-2026",
                        term=Term.CN, level="THCS", revision=2, supersedes=w.bundles["own"],
                        sha256="cd" * 32, canonical_json=new_data)
    correction.state, correction.approved_by_id, correction.decided_at = CorrectionState.APPLIED, \
        w.users["prin"].id, T0
    correction.new_bundle, correction.details = new_bundle, {"môn": "Toán", "học sinh": ["010213000000"]}

    fresh_step = _reload(session, step)
    assert fresh_step.state is StepState.SIGNED and fresh_step.signed_at == T0
    fresh_cert = session.scalars(
        select(Certificate).where(Certificate.fingerprint == fresh_step.cert_fingerprint)).one()
    assert fresh_cert.user is not None and fresh_cert.user.username == "subj"
    assert fresh_cert.not_before == T0 and fresh_cert.usable_at(T0 + timedelta(days=1))
    fresh_corr = session.get(Correction, correction.id)
    assert fresh_corr is not None
    assert fresh_corr.details == {"môn": "Toán", "học sinh": ["010213000000"]}
    assert {(x.user.username, x.capacity) for x in fresh_corr.witnesses} == {
        ("sadm", WitnessCapacity.BOARD_MEMBER), ("home", WitnessCapacity.HOMEROOM_TEACHER)}
    assert fresh_corr.new_bundle is not None and fresh_corr.new_bundle.supersedes_id == fresh_corr.bundle_id


def test_archive_entry_round_trips(session: Session) -> None:
    entry = ArchiveEntry(sha256="ef" * 32, record_id="hoc_ba_thcs.X.2025-2026.CN.010213000000",
                         kind="hoc_ba_thcs", student_code="010213000000", school_code="X",
                         school_year="2025-2026", revision=1, key="records/ef", version_id="v1", size=123456,
                         retain_until="2126-05-30T00:00:00Z", stored_at="2026-05-30T08:00:00Z",
                         report_key="reports/ef", log_index=0)
    session.add(entry)
    fresh = _reload(session, entry)
    assert fresh.retain_until == "2126-05-30T00:00:00Z" and fresh.superseded_by is None


def test_certificate_fingerprint_is_unique(session: Session) -> None:
    w = build_world(session)
    der = self_signed_der("Một chứng thư")
    session.add(Certificate.from_der(der, user=w.users["subj"]))
    session.flush()
    with pytest.raises(IntegrityError, match="fingerprint"), session.begin_nested():
        session.add(Certificate.from_der(der, user=w.users["home"]))  # same key, another person
        session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(Certificate.from_der(der, school=w.units["school"]))  # nor the school's seal
        session.flush()


def test_certificate_has_exactly_one_owner(session: Session) -> None:
    w = build_world(session)
    with pytest.raises(IntegrityError, match="one_owner"), session.begin_nested():
        session.add(Certificate.from_der(self_signed_der("x"), user=w.users["subj"],
                                         school=w.units["school"]))
        session.flush()
    with pytest.raises(IntegrityError, match="one_owner"), session.begin_nested():
        session.add(Certificate.from_der(self_signed_der("y")))
        session.flush()


def test_bindings_from_database(session: Session) -> None:
    w = build_world(session)
    teacher = Certificate.from_der(self_signed_der("GV Toán"), user=w.users["subj"])
    seal = Certificate.from_der(self_signed_der("Trường THCS Lê Quý Đôn"), school=w.units["school"])
    revoked = Certificate.from_der(self_signed_der("GV Văn"), user=w.users["other_t"])
    revoked.revoked, revoked.revoked_at = True, T0
    outsider = Certificate.from_der(self_signed_der("Sở"), user=w.users["prov"])  # no staff code at S1
    session.add_all([teacher, seal, revoked, outsider])
    session.flush()
    bindings = bindings_for_school(session, w.units["school"], at=T0 + timedelta(days=1))
    assert dict(bindings.by_fingerprint) == {teacher.fingerprint: "GV003",
                                             seal.fingerprint: "school:LC-THCS-001"}
    assert bindings.owner(teacher.fingerprint.upper()) == "GV003"
    assert staff_user_ids(session, w.units["school"]) == {
        "GV001": w.users["prin"].id, "GV002": w.users["home"].id, "GV003": w.users["subj"].id,
        "GV004": w.users["other_t"].id}
    expired = bindings_for_school(session, w.units["school"], at=T0 + timedelta(days=400))
    assert dict(expired.by_fingerprint) == {}


def test_tree_shape_is_enforced(session: Session) -> None:
    province = OrgUnit(kind=OrgUnitKind.PROVINCE, code="P", name="Sở")
    session.add(province)
    session.flush()
    with pytest.raises(InvalidShapeError, match="district"), session.begin_nested():
        session.add(OrgUnit(kind=OrgUnitKind.SCHOOL, code="S", name="Trường", parent=province))
        session.flush()
    with pytest.raises(IntegrityError, match="root_is_province"), session.begin_nested():
        session.add(OrgUnit(kind=OrgUnitKind.DISTRICT, code="D", name="Phòng"))  # a Phòng without a Sở
        session.flush()
    district = OrgUnit(kind=OrgUnitKind.DISTRICT, code="D", name="Phòng", parent=province)
    user = User(username="u", full_name="U")
    session.add_all([district, user])
    session.flush()
    with pytest.raises(InvalidShapeError, match="principal"), session.begin_nested():
        session.add(RoleAssignment(user=user, role=RoleName.PRINCIPAL, org_unit=district))
        session.flush()
    with pytest.raises(InvalidShapeError, match="SchoolClass"), session.begin_nested():
        session.add(SchoolClass(school=district, school_year="2025-2026", name="7A1", grade=7))
        session.flush()
    school = OrgUnit(kind=OrgUnitKind.SCHOOL, code="S1", name="Trường 1", parent=district)
    other = OrgUnit(kind=OrgUnitKind.SCHOOL, code="S2", name="Trường 2", parent=district)
    klass = SchoolClass(school=school, school_year="2025-2026", name="7A1", grade=7)
    session.add_all([school, other, klass])
    session.flush()
    with pytest.raises(InvalidShapeError, match="7A1"), session.begin_nested():
        session.add(Document(record_id="r", kind="hoc_ba_thcs", student_code="010213000000", school=other,
                             school_year="2025-2026", term=Term.CN, school_class=klass))
        session.flush()


def test_one_live_grant_per_role_and_unit(session: Session) -> None:
    w = build_world(session)
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(RoleAssignment(user=w.users["clerk"], role=RoleName.CLERK, org_unit=w.units["school"]))
        session.flush()
    w.roles["clerk"].revoked_at = T0  # revoked grants stay as history; a new grant is fine
    session.add(RoleAssignment(user=w.users["clerk"], role=RoleName.CLERK, org_unit=w.units["school"]))
    session.flush()


def test_foreign_keys_are_enforced(session: Session) -> None:
    """On SQLite too (PRAGMA foreign_keys is set by make_engine)."""
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(text("INSERT INTO staff_codes (school_id, code, user_id) "
                             "VALUES (999999, 'GV1', 999999)"))


def test_naive_datetimes_are_refused(session: Session) -> None:
    w = build_world(session)
    session.add(LockWindow(kind=WindowKind.SIGNING, org_unit=w.units["school"], school_year="2025-2026",
                           term=Term.CN, opens_at=datetime(2026, 5, 1), closes_at=datetime(2026, 5, 2)))
    with pytest.raises(StatementError, match="naive"), session.begin_nested():
        session.flush()
    session.expunge_all()


def test_times_come_back_in_utc(session: Session) -> None:
    w = build_world(session)
    hanoi = datetime(2026, 5, 20, 8, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    window = LockWindow(kind=WindowKind.SIGNING, org_unit=w.units["school"], school_year="2025-2026",
                        term=Term.CN, opens_at=hanoi, closes_at=hanoi + timedelta(hours=2))
    session.add(window)
    fresh = _reload(session, window)
    assert fresh.opens_at == datetime(2026, 5, 20, 8, 0, tzinfo=UTC)
    assert fresh.opens_at.utcoffset() == timedelta(0)


# Frozen columns: a locked bundle's bytes, a revision's digest, a certificate's identity ------------
def test_frozen_columns_refused_by_the_orm(session: Session) -> None:
    w = build_world(session)
    bundle, rev = w.bundles["own"], w.revisions["own"]
    with pytest.raises(ImmutableRowError, match="sha256"), session.begin_nested():
        bundle.sha256 = "00" * 32
        session.flush()
    session.refresh(bundle)
    with pytest.raises(ImmutableRowError, match="data_sha256"), session.begin_nested():
        rev.data_sha256 = "11" * 32
        session.flush()
    session.refresh(rev)
    rev.state, rev.stage, rev.pdf_sha256 = DocumentState.SIGNING, 1, "22" * 32  # the workflow's columns move
    session.flush()


@pytest.mark.parametrize(("table", "column", "value"), [
    ("bundles", "sha256", "'" + "00" * 32 + "'"),
    ("bundles", "canonical_json", "NULL"),
    ("document_revisions", "data_sha256", "'" + "11" * 32 + "'"),
    ("certificates", "fingerprint", "'" + "ff" * 32 + "'"),
    ("certificates", "der", "NULL"),
])
def test_frozen_columns_refused_by_the_database(session: Session, table: str, column: str,
                                                value: str) -> None:
    w = build_world(session)
    session.add(Certificate.from_der(self_signed_der("x"), user=w.users["subj"]))
    session.flush()
    with pytest.raises(DBAPIError, match="frozen"), session.begin_nested():
        session.execute(text(f"UPDATE {table} SET {column} = {value}"))
    # Setting a frozen column to the value it already has changes nothing and is allowed.
    session.execute(text(f"UPDATE {table} SET {column} = {column}"))
    session.execute(text("UPDATE document_revisions SET state = 'rendered'"))
    session.execute(text("UPDATE certificates SET revoked = TRUE, revoked_at = CURRENT_TIMESTAMP"))
