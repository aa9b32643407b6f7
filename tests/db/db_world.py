"""A small province for the database tests, built with the real models.

Sở LC → Phòng TP (schools S1, S2) and Phòng BX (school S3). S1 has classes 7A1 (``own``) and
7A2 (``other``); S2 and S3 one class each. One person per role works in S1 (the district
admin in TP, the provincial admin at the Sở); ``other_t`` is a second teacher of S1. Every
class has a locked bundle, a document with one revision, its plan's signature steps and a
correction request. Some steps outside the test users' scope are deliberately *assigned* to
them (as a mistaken import might do), to show that scope wins over assignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session

from hsdt.db.models import (
    Bundle,
    BundleLock,
    Correction,
    Document,
    DocumentRevision,
    OrgUnit,
    OrgUnitKind,
    RoleAssignment,
    RoleName,
    SchoolClass,
    SignatureStep,
    StaffCode,
    TeachingAssignment,
    User,
)
from hsdt.domain.canonical import sha256_hex
from hsdt.domain.plans import Role as PlanRole
from hsdt.domain.schema import Term

ROLE_USERS = ("prov", "dist", "sadm", "prin", "home", "subj", "clerk")
"""The test users, in the column order of the expectation strings."""

ROLE_OF = {
    "prov": RoleName.PROVINCIAL_ADMIN, "dist": RoleName.DISTRICT_ADMIN, "sadm": RoleName.SCHOOL_ADMIN,
    "prin": RoleName.PRINCIPAL, "home": RoleName.HOMEROOM_TEACHER, "subj": RoleName.SUBJECT_TEACHER,
    "clerk": RoleName.CLERK,
}

YEAR = "2025-2026"
T0 = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)


@dataclass
class World:
    units: dict[str, OrgUnit] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    classes: dict[str, SchoolClass] = field(default_factory=dict)
    bundles: dict[str, Bundle] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)
    revisions: dict[str, DocumentRevision] = field(default_factory=dict)
    steps: dict[str, SignatureStep] = field(default_factory=dict)
    corrections: dict[str, Correction] = field(default_factory=dict)
    roles: dict[str, RoleAssignment] = field(default_factory=dict)


def self_signed_der(common_name: str, days: int = 365, start: datetime = T0) -> bytes:
    """A small real certificate (ECDSA P-256), enough for binding tests."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def build_world(session: Session) -> World:
    w = World()
    u = w.units
    u["province"] = OrgUnit(kind=OrgUnitKind.PROVINCE, code="LC", name="Sở GD&ĐT Lào Cai")
    u["district"] = OrgUnit(kind=OrgUnitKind.DISTRICT, code="LC-TP", name="Phòng GD&ĐT TP Lào Cai",
                            parent=u["province"])
    u["other_district"] = OrgUnit(kind=OrgUnitKind.DISTRICT, code="LC-BX", name="Phòng GD&ĐT Bát Xát",
                                  parent=u["province"])
    u["school"] = OrgUnit(kind=OrgUnitKind.SCHOOL, code="LC-THCS-001", name="Trường THCS Lê Quý Đôn",
                          parent=u["district"])
    u["other_school"] = OrgUnit(kind=OrgUnitKind.SCHOOL, code="LC-THCS-002", name="Trường THCS Kim Tân",
                                parent=u["district"])
    u["far_school"] = OrgUnit(kind=OrgUnitKind.SCHOOL, code="LC-THCS-101", name="Trường THCS Bát Xát",
                              parent=u["other_district"])
    session.add_all(u.values())

    for name in (*ROLE_USERS, "other_t", "prin2", "prin3"):
        w.users[name] = User(username=name, full_name=f"Người dùng {name}")
    session.add_all(w.users.values())
    session.flush()

    unit_of = {"prov": "province", "dist": "district"}
    for name, role in ROLE_OF.items():
        w.roles[name] = RoleAssignment(user=w.users[name], role=role, org_unit=u[unit_of.get(name, "school")])
    extra = [("other_t", RoleName.SUBJECT_TEACHER, "school"),
             ("other_t", RoleName.HOMEROOM_TEACHER, "school"),
             ("prin2", RoleName.PRINCIPAL, "other_school"),
             ("prin3", RoleName.PRINCIPAL, "far_school")]
    session.add_all(w.roles.values())
    session.add_all(RoleAssignment(user=w.users[n], role=r, org_unit=u[unit]) for n, r, unit in extra)
    for i, name in enumerate(("prin", "home", "subj", "other_t")):
        session.add(StaffCode(school=u["school"], code=f"GV{i + 1:03d}", user=w.users[name]))

    c = w.classes
    c["own"] = SchoolClass(school=u["school"], school_year=YEAR, name="7A1", grade=7,
                           homeroom_teacher=w.users["home"])
    c["other"] = SchoolClass(school=u["school"], school_year=YEAR, name="7A2", grade=7,
                             homeroom_teacher=w.users["other_t"])
    # In other schools the homeroom teacher is (wrongly) our own test user: scope must still hide it.
    c["other_school"] = SchoolClass(school=u["other_school"], school_year=YEAR, name="7A1", grade=7,
                                    homeroom_teacher=w.users["home"])
    c["far"] = SchoolClass(school=u["far_school"], school_year=YEAR, name="7A1", grade=7,
                           homeroom_teacher=w.users["home"])
    session.add_all(c.values())
    session.add_all([
        TeachingAssignment(teacher=w.users["subj"], school_class=c["own"], subject="TOAN"),
        TeachingAssignment(teacher=w.users["other_t"], school_class=c["own"], subject="NGU_VAN"),
        TeachingAssignment(teacher=w.users["other_t"], school_class=c["other"], subject="TOAN"),
        TeachingAssignment(teacher=w.users["subj"], school_class=c["far"], subject="TOAN"),
    ])
    session.flush()

    principal_of = {"own": "prin", "other": "prin", "other_school": "prin", "far": "prin3"}
    subject_teacher_of = {"own": "subj", "other": "subj", "other_school": "subj", "far": "subj"}
    for key, klass in c.items():
        school = klass.school
        data = f'{{"class":"{key}","school":"{school.code}"}}'.encode()
        bundle = Bundle(school=school, school_class=klass, school_year=YEAR, term=Term.CN, level="THCS",
                        sha256=sha256_hex(data), canonical_json=data)
        lock = BundleLock(bundle=bundle, sha256=bundle.sha256, locked_by_id=w.users["prin"].id,
                          locked_by_name="Hiệu trưởng", locked_at=T0)
        doc = Document(record_id=f"hoc_ba_thcs.{school.code}.{YEAR}.CN.{key}", kind="hoc_ba_thcs",
                       student_code=f"0102130000{len(w.documents):02d}", school=school, school_year=YEAR,
                       term=Term.CN, school_class=klass)
        rev = DocumentRevision(document=doc, revision=1, bundle=bundle, data_sha256=sha256_hex(b"d" + data))
        steps = {
            "seal": SignatureStep(field_name="seal", stage=0, role=PlanRole.SCHOOL_SEAL,
                                  assignee=f"school:{school.code}"),
            "subject": SignatureStep(field_name="subject_TOAN", stage=1, role=PlanRole.SUBJECT_TEACHER,
                                     subject="TOAN", assignee="GV003",
                                     assignee_user_id=w.users[subject_teacher_of[key]].id),
            "other_subject": SignatureStep(field_name="subject_NGU_VAN", stage=1,
                                           role=PlanRole.SUBJECT_TEACHER, subject="NGU_VAN", assignee="GV004",
                                           assignee_user_id=w.users["other_t"].id),
            # Assigned to subj by the plan, but subj holds no teaching assignment for GDCD here.
            "untaught_subject": SignatureStep(field_name="subject_GDCD", stage=1,
                                              role=PlanRole.SUBJECT_TEACHER, subject="GDCD",
                                              assignee="GV003", assignee_user_id=w.users["subj"].id),
            "homeroom": SignatureStep(field_name="homeroom", stage=2, role=PlanRole.HOMEROOM_TEACHER,
                                      assignee="GV002", assignee_user_id=w.users["home"].id),
            "principal": SignatureStep(field_name="principal", stage=3, role=PlanRole.PRINCIPAL,
                                       assignee="GV001", assignee_user_id=w.users[principal_of[key]].id),
        }
        for step in steps.values():
            step.revision = rev
        correction = Correction(bundle=bundle, document=doc, reason="Nhập nhầm điểm giữa kì môn Toán",
                                requested_by_id=w.users["home"].id)
        session.add_all([bundle, lock, doc, rev, *steps.values(), correction])
        w.bundles[key], w.documents[key], w.revisions[key], w.corrections[key] = bundle, doc, rev, correction
        for name, step in steps.items():
            w.steps[name if key == "own" else f"{name}@{key}"] = step
    session.flush()
    return w
