"""Refused signatures through the API, each one audited and none of them changing anything.

Acceptance: "Signing outside a window, out of order, for someone else's class, or with a
certificate bound to another person is refused and audited." Also: a rejection with a reason
sends the record back (``rejected``) and is audited; one without a reason is refused.

The school has two classes: 7A1 from the sample bundle (homeroom GV002, TOAN and GDDP by
GV003, NGOAI_NGU by GV004) and 7A2, provisioned from a copy with other students, whose
homeroom teacher is GV004 and in which neither GV002 nor GV003 teaches. Both are imported,
locked, rendered and certified by the school seal, so stage 1 (subject teachers) is open.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hsdt.agent import open_file_key, sign_value
from hsdt.db.models import (
    AuditEntry,
    Document,
    DocumentRevision,
    LockWindow,
    OrgUnit,
    SignaturePreparation,
    SignatureStep,
    WindowKind,
)
from hsdt.domain.bundles import bundle_json
from hsdt.domain.plans import Role
from hsdt.domain.sample import sample_bundle
from hsdt.domain.schema import Assignment, TermBundle
from hsdt.domain.schema import SchoolClass as ClassSpec
from hsdt.service.provision import provision_school
from hsdt.signing import testpki

from .service_world import PASSWORD, Service

OTHER_CLASS = "7A2"
# 7A2: GV002's and GV003's subjects go to GV004 and GV005; GV004 (NGU_VAN there) leads it.
_SWAP = {"GV002": "GV004", "GV003": "GV005"}


def other_class_bundle(bundle: TermBundle) -> TermBundle:
    students = sample_bundle(seed=6, students=2).students
    assert not {s.code for s in students} & {s.code for s in bundle.students}
    return bundle.model_copy(update={
        "class_": ClassSpec(name=OTHER_CLASS, grade=bundle.class_.grade, homeroom_teacher_id="GV004"),
        "assignments": [Assignment(subject=a.subject, teacher_id=_SWAP.get(a.teacher_id, a.teacher_id))
                        for a in bundle.assignments],
        "students": students,
    })


@dataclass
class School:
    svc: Service
    other: TermBundle

    def student(self, i: int, other: bool = False) -> str:
        return (self.other if other else self.svc.bundle).students[i].code

    def step(self, student_code: str, role: Role, subject: str | None = None) -> int:
        with self.svc.sessions() as s:
            stmt = (select(SignatureStep.id)
                    .join(DocumentRevision, DocumentRevision.id == SignatureStep.revision_id)
                    .join(Document, Document.id == DocumentRevision.document_id)
                    .where(Document.student_code == student_code, SignatureStep.role == role))
            if subject is not None:
                stmt = stmt.where(SignatureStep.subject == subject)
            ids = s.scalars(stmt).all()
            assert len(ids) == 1, (student_code, role, subject, ids)
            return ids[0]

    def prepare(self, who: str, step_id: int, cert_of: str | None = None) -> Any:
        """``who`` asks to sign ``step_id``, sending the certificate of ``cert_of`` (default: own)."""
        ident = self.svc.pki.identity(cert_of or who)
        with self.svc.client(who) as c:
            return c.post(f"/api/v1/signatures/{step_id}/prepare", json={
                "certificate": base64.b64encode(ident.cert.dump()).decode(),
                "chain": [base64.b64encode(x.dump()).decode() for x in ident.chain]})

    def snapshot(self, step_id: int) -> tuple[object, ...]:
        """What a refusal must leave alone: the step, its revision and its preparations."""
        with self.svc.sessions() as s:
            step = s.get(SignatureStep, step_id)
            assert step is not None
            rev = step.revision
            preps = s.scalars(select(SignaturePreparation.id)
                              .where(SignaturePreparation.step_id == step_id)).all()
            return (step.state.value, step.cert_fingerprint, step.pdf_sha256, step.acted_by_id,
                    rev.state.value, rev.stage, rev.pdf_sha256, len(preps))

    def audit(self, step_id: int, action: str = "sign_field") -> list[AuditEntry]:
        with self.svc.sessions() as s:
            rows = s.scalars(select(AuditEntry).where(
                AuditEntry.object_type == "signature_steps", AuditEntry.object_id == str(step_id),
                AuditEntry.action == action).order_by(AuditEntry.id)).all()
            s.expunge_all()
            return list(rows)

    def assert_refused(self, who: str, step_id: int, response: Any, status: int, code: str,
                       outcome: str, before: tuple[object, ...], audited_before: int) -> AuditEntry:
        """The answer, one new audit entry saying so, and nothing else changed."""
        assert response.status_code == status, response.text
        assert response.json()["error"] == code, response.json()
        assert response.json()["message"]
        assert self.snapshot(step_id) == before
        rows = self.audit(step_id)
        assert len(rows) == audited_before + 1, [(r.action, r.outcome, r.details) for r in rows]
        entry = rows[-1]
        user = self.svc.user(who)
        assert (entry.actor, entry.actor_user_id) == (user.username, user.id)
        assert (entry.action, entry.outcome) == ("sign_field", outcome)
        assert entry.details["code"] == code, entry.details
        assert entry.ip == "127.0.0.1"
        assert entry.reason  # the message the person was given
        return entry


@pytest.fixture(scope="module")
def school(service: Service) -> Iterator[School]:
    other = other_class_bundle(service.bundle)
    with service.sessions() as s, s.begin():
        provision_school(s, other, password=PASSWORD)
    for b in (service.bundle, other):
        _, revs = service.import_and_render(bundle_json(b))
        assert len(revs) == len(b.students)
    with service.client("GV001") as c:
        docs = c.get("/api/v1/documents").json()
    assert len(docs) == len(service.bundle.students) + len(other.students)
    assert {d["state"] for d in docs} == {"certified"}, docs
    yield School(service, other)


def test_homeroom_field_before_subjects_is_out_of_order(school: School) -> None:
    step = school.step(school.student(0), Role.HOMEROOM_TEACHER)
    before, n = school.snapshot(step), len(school.audit(step))
    r = school.prepare("GV002", step)
    school.assert_refused("GV002", step, r, 422, "out_of_order", "refused", before, n)
    # Not offered either: the homeroom teacher's queue holds only their subjects for now.
    with school.svc.client("GV002") as c:
        pending = c.get("/api/v1/signatures/pending").json()
    assert pending and {p["role"] for p in pending} == {"subject_teacher"}
    assert step not in {p["step_id"] for p in pending}


def test_certificate_bound_to_another_teacher_is_refused(school: School) -> None:
    step = school.step(school.student(0), Role.SUBJECT_TEACHER, "TOAN")
    before, n = school.snapshot(step), len(school.audit(step))
    r = school.prepare("GV003", step, cert_of="GV004")
    entry = school.assert_refused("GV003", step, r, 422, "cert_not_bound", "refused", before, n)
    assert entry.details["certificate"] == school.svc.pki.identity("GV004").fingerprint_sha256
    # Nor a certificate of the school's seal, nor one nobody registered.
    for other in ("seal", testpki.NEGATIVE_CASES[0]):
        n = len(school.audit(step))
        r = school.prepare("GV003", step, cert_of=other)
        assert r.status_code == 422 and r.json()["error"] == "cert_not_bound", (other, r.text)
        assert school.snapshot(step) == before
        assert len(school.audit(step)) == n + 1


def test_field_of_another_teacher_is_forbidden(school: School) -> None:
    step = school.step(school.student(0), Role.SUBJECT_TEACHER, "NGOAI_NGU")  # GV004's
    before, n = school.snapshot(step), len(school.audit(step))
    r = school.prepare("GV003", step)
    entry = school.assert_refused("GV003", step, r, 403, "outside_assignment", "forbidden", before, n)
    assert entry.details["code"] == "outside_assignment"
    # With the assignee's own certificate it is still someone else's field (Điều 10).
    r = school.prepare("GV003", step, cert_of="GV004")
    school.assert_refused("GV003", step, r, 403, "outside_assignment", "forbidden", before, n + 1)
    # The principal sees the whole school but signs only the principal's field.
    r = school.prepare("GV001", step)
    school.assert_refused("GV001", step, r, 403, "outside_assignment", "forbidden", before, n + 2)


def test_field_in_another_class_is_not_visible(school: School) -> None:
    code = school.student(0, other=True)
    homeroom = school.step(code, Role.HOMEROOM_TEACHER)  # GV004 leads 7A2
    subject = school.step(code, Role.SUBJECT_TEACHER, "TOAN")  # GV005 teaches it in 7A2
    for who, step in (("GV002", homeroom), ("GV003", subject), ("GV003", homeroom)):
        before, n = school.snapshot(step), len(school.audit(step))
        r = school.prepare(who, step)
        entry = school.assert_refused(who, step, r, 404, "not_found", "not_visible", before, n)
        assert entry.object_type == "signature_steps" and entry.object_id == str(step)
    with school.svc.sessions() as s:
        record_id = s.scalars(select(Document.record_id).where(Document.student_code == code)).one()
    with school.svc.client("GV002") as c:
        assert c.get(f"/api/v1/documents/{record_id}").status_code == 404
        assert all(p["class_name"] != OTHER_CLASS for p in c.get("/api/v1/signatures/pending").json())
    with school.svc.client("GV004") as c:  # 7A2's homeroom teacher does see it
        assert c.get(f"/api/v1/documents/{record_id}").status_code == 200


def _signing_window(svc: Service) -> int:
    with svc.sessions() as s:
        school_id = s.scalars(select(OrgUnit.id).where(OrgUnit.code == svc.bundle.school.code)).one()
        now = datetime.now(UTC)
        rows = [w for w in s.scalars(select(LockWindow).where(
            LockWindow.kind == WindowKind.SIGNING, LockWindow.org_unit_id == school_id))
            if w.opens_at.replace(tzinfo=w.opens_at.tzinfo or UTC) <= now
            < w.closes_at.replace(tzinfo=w.closes_at.tzinfo or UTC)]
        assert len(rows) == 1, rows
        return rows[0].id


def test_signing_outside_the_window_is_refused(school: School) -> None:
    svc = school.svc
    code = school.student(1)
    toan = school.step(code, Role.SUBJECT_TEACHER, "TOAN")
    gddp = school.step(code, Role.SUBJECT_TEACHER, "GDDP")
    # A preparation made while the window is open, completed after it closed.
    prepared = school.prepare("GV003", gddp)
    assert prepared.status_code == 200, prepared.text
    prepared = prepared.json()
    ident = svc.pki.identity("GV003")
    assert ident.p12_path is not None
    key = open_file_key(ident.p12_path, testpki.SOFTWARE_P12_PASSPHRASE.decode())
    try:
        value = base64.b64encode(sign_value(key, base64.b64decode(prepared["to_be_signed"]))).decode()
    finally:
        key.close()

    window = _signing_window(svc)
    with svc.client("GV003") as c:  # a teacher sets no windows
        r = c.post(f"/api/v1/windows/{window}/close")
        assert r.status_code == 403, r.text
    with svc.client("qtht") as c:
        r = c.post(f"/api/v1/windows/{window}/close")
        assert r.status_code == 200, r.text
    try:
        before, n = school.snapshot(toan), len(school.audit(toan))
        r = school.prepare("GV003", toan)
        school.assert_refused("GV003", toan, r, 422, "window_closed", "refused", before, n)

        before, n = school.snapshot(gddp), len(school.audit(gddp))
        with svc.client("GV003") as c:
            r = c.post(f"/api/v1/signatures/preparations/{prepared['id']}/complete",
                       json={"signature_value": value})
        school.assert_refused("GV003", gddp, r, 422, "window_closed", "refused", before, n)
        # The agent gets the same answer for everything it tries, and signs nothing.
        result = svc.sign_as("GV004")
        assert not result.signed and result.failed
        assert all("khoá ký" in msg for msg in result.failed.values()), result.failed
    finally:
        now = datetime.now(UTC)
        with svc.sessions() as s:
            school_id = s.scalars(select(OrgUnit.id).where(OrgUnit.code == svc.bundle.school.code)).one()
        with svc.client("qtht") as c:
            r = c.post("/api/v1/windows", json={
                "kind": "signing", "school_year": svc.bundle.school_year, "term": str(svc.bundle.term),
                "opens_at": (now - timedelta(minutes=1)).isoformat(),
                "closes_at": (now + timedelta(days=7)).isoformat(),
                "unit_id": school_id, "reason": "mở lại sau kiểm thử"})
            assert r.status_code == 201, r.text
    with svc.sessions() as s:
        actions = [(e.action, e.actor) for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action.in_(("close_window", "open_window"))).order_by(AuditEntry.id))]
    qtht = svc.username("qtht")
    assert actions[-2:] == [("close_window", qtht), ("open_window", qtht)]
    # Open again: the same preparation now completes — the refusal had left it intact.
    with svc.client("GV003") as c:
        r = c.post(f"/api/v1/signatures/preparations/{prepared['id']}/complete",
                   json={"signature_value": value})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "signing"
    assert school.snapshot(gddp)[0] == "signed"
    assert [e.outcome for e in school.audit(gddp)][-1] == "ok"


def test_reject_needs_a_reason_and_sends_the_record_back(school: School) -> None:
    svc = school.svc
    code = school.student(3)
    step = school.step(code, Role.SUBJECT_TEACHER, "TOAN")
    before = school.snapshot(step)
    with svc.client("GV003") as c:
        r = c.post(f"/api/v1/signatures/{step}/reject", json={"reason": ""})
        assert r.status_code == 422, r.text
        r = c.post(f"/api/v1/signatures/{step}/reject", json={"reason": "   "})
        assert r.status_code == 422 and r.json()["error"] == "reason_required", r.text
        assert school.snapshot(step) == before
        refused = school.audit(step, "reject_field")
        assert [(e.outcome, e.details["code"]) for e in refused] == [("refused", "reason_required")]
        # Someone else's field cannot be rejected either.
        other = school.step(code, Role.SUBJECT_TEACHER, "NGOAI_NGU")
        r = c.post(f"/api/v1/signatures/{other}/reject", json={"reason": "không phải của tôi"})
        assert r.status_code == 403, r.text
        assert [e.outcome for e in school.audit(other, "reject_field")] == ["forbidden"]

        reason = "Điểm giữa kì môn Toán nhập sai, đề nghị kiểm tra lại."
        r = c.post(f"/api/v1/signatures/{step}/reject", json={"reason": reason})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "rejected"
    gv003 = svc.user("GV003").id
    with svc.sessions() as s:
        row = s.get(SignatureStep, step)
        assert row is not None
        assert (row.state.value, row.reject_reason, row.acted_by_id) == ("rejected", reason, gv003)
        assert row.revision.state.value == "rejected"
        assert row.revision.pdf_sha256 == before[6]
    entry = school.audit(step, "reject_field")[-1]
    assert (entry.outcome, entry.actor, entry.reason) == ("ok", svc.username("GV003"), reason)
    assert entry.details["field"] and entry.details["record_id"].endswith(code)

    # A rejected record takes no more signatures until its data is corrected.
    other = school.step(code, Role.SUBJECT_TEACHER, "NGOAI_NGU")
    before, n = school.snapshot(other), len(school.audit(other))
    r = school.prepare("GV004", other)
    school.assert_refused("GV004", other, r, 409, "not_signable", "refused", before, n)
    with svc.client("GV004") as c:
        pending = c.get("/api/v1/signatures/pending").json()
    assert code not in {p["student_code"] for p in pending}
    with svc.client("GV003") as c:  # rejecting twice is refused too
        r = c.post(f"/api/v1/signatures/{step}/reject", json={"reason": reason})
        assert r.status_code == 409 and r.json()["error"] == "step_rejected", r.text


def test_other_class_still_signs_normally(school: School) -> None:
    """The refusals above belong to their callers only: 7A2's own teachers sign as usual."""
    result = school.svc.sign_as("GV005")
    assert not result.failed, result.failed
    subjects = sum(1 for a in school.other.assignments if a.teacher_id == "GV005")
    in_other = [n for n in result.signed if school.student(0, other=True) in n
                or school.student(1, other=True) in n]
    assert len(in_other) == subjects * len(school.other.students)
