"""A correction of locked, signed and archived data, through the API (Điều 11.4).

Acceptance: "A correction yields new records that supersede the old; the old ones remain
retrievable; the audit log shows request, approval, witnesses, and each step."

The class is signed to the archive; the homeroom teacher asks to correct one student's
record, the principal approves it with a board member and the homeroom teacher as
witnesses, and applies the corrected bundle (that student's remark changed). Only that
student's record gets a new revision; it is certified, signed by every teacher again and
archived, superseding the old one — which stays in the archive, downloadable and valid.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from hsdt.db.models import (
    AuditEntry,
    Correction,
    CorrectionWitness,
    Document,
    DocumentRevision,
    SignatureStep,
)
from hsdt.domain.bundles import bundle_json

from .service_world import Service
from .test_api_flow import sign_class

NEW_REMARK = "Đã tiến bộ rõ rệt trong học kì II; chăm chỉ, giúp đỡ bạn bè (nhận xét đã điều chỉnh)."
REASON = "Nhận xét cuối năm của giáo viên chủ nhiệm ghi nhầm từ học sinh khác."


@dataclass
class Story:
    svc: Service
    student: str  # the corrected student's code
    record_id: str
    old_sha: str  # the archived record before the correction
    old_revision_id: int
    others: dict[str, str]  # the other students' archived sha256, which must not change
    correction: dict[str, Any] | None = None
    applied: dict[str, Any] | None = None

    def audit(self, action: str) -> list[AuditEntry]:
        with self.svc.sessions() as s:
            rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                  .order_by(AuditEntry.id)))
            s.expunge_all()
            return rows


def _archive(c: Any, student: str) -> list[dict[str, Any]]:
    r = c.get("/api/v1/archive/records", params={"student_code": student})
    assert r.status_code == 200, r.text
    return list(r.json())


@pytest.fixture(scope="module")
def archived(service: Service) -> Story:
    _, revs = service.import_and_render(bundle_json(service.bundle))
    assert len(revs) == len(service.bundle.students)
    sign_class(service)
    codes = [s.code for s in service.bundle.students]
    with service.client("vanthu") as c:
        found = {code: _archive(c, code) for code in codes}
    assert all(len(v) == 1 for v in found.values()), found
    student = codes[1]
    entry = found[student][0]
    with service.client("GV001") as c:
        doc = c.get(f"/api/v1/documents/{entry['record_id']}").json()
    assert [r["state"] for r in doc["revisions"]] == ["archived"]
    return Story(service, student, entry["record_id"], entry["sha256"], doc["revisions"][0]["revision_id"],
                 {code: v[0]["sha256"] for code, v in found.items() if code != student})


@pytest.fixture(scope="module")
def requested(archived: Story) -> Story:
    with archived.svc.client("GV002") as c:
        r = c.post("/api/v1/corrections", json={"record_id": archived.record_id, "reason": REASON})
    assert r.status_code == 201, r.text
    archived.correction = r.json()
    return archived


def _witnesses(svc: Service) -> list[dict[str, str]]:
    return [{"username": svc.username("qtht"), "capacity": "board_member"},
            {"username": svc.username("GV002"), "capacity": "homeroom_teacher"}]


def corrected_bundle(svc: Service, student: str) -> dict[str, Any]:
    data = bundle_json(svc.bundle)
    (target,) = [s for s in data["students"] if s["code"] == student]
    assert target["remark"] != NEW_REMARK
    target["remark"] = NEW_REMARK
    return data


@pytest.fixture(scope="module")
def applied(requested: Story) -> Story:
    svc = requested.svc
    assert requested.correction is not None
    cid = requested.correction["id"]
    with svc.client("GV001") as c:
        r = c.post(f"/api/v1/corrections/{cid}/approve",
                   json={"witnesses": _witnesses(svc), "note": "Đồng ý điều chỉnh."})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "approved"
        r = c.post(f"/api/v1/corrections/{cid}/apply", json=corrected_bundle(svc, requested.student))
        assert r.status_code == 200, r.text
        requested.applied = r.json()
        new_bundle = requested.applied["new_bundle_id"]
        r = c.post(f"/api/v1/bundles/{new_bundle}/seal")  # the school seal certifies the new one
        assert r.status_code == 202, r.text
        assert [x["state"] for x in r.json()] == ["certified"], r.json()
    return requested


@pytest.fixture(scope="module")
def resigned(applied: Story) -> Story:
    sign_class(applied.svc, records=1)
    return applied


# --------------------------------------------------------------------------------------------
def test_request_and_the_refused_approvals(requested: Story) -> None:
    svc, story = requested.svc, requested
    assert story.correction is not None
    cid = story.correction["id"]
    assert (story.correction["state"], story.correction["record_id"], story.correction["reason"]) == (
        "requested", story.record_id, REASON)
    with svc.client("GV002") as c:
        r = c.post("/api/v1/corrections", json={"record_id": story.record_id, "reason": "  "})
        assert r.status_code == 422 and r.json()["error"] == "reason_required", r.text
    with svc.client("vanthu") as c:  # the clerk reads, never asks for changes
        r = c.post("/api/v1/corrections", json={"record_id": story.record_id, "reason": REASON})
        assert r.status_code == 403, r.text

    refused_before = len(story.audit("approve_correction"))
    with svc.client("GV003") as c:  # a subject teacher cannot approve
        r = c.post(f"/api/v1/corrections/{cid}/approve", json={"witnesses": _witnesses(svc)})
        assert r.status_code == 403, r.text
    with svc.client("GV002") as c:  # nor the homeroom teacher who asked
        r = c.post(f"/api/v1/corrections/{cid}/approve", json={"witnesses": _witnesses(svc)})
        assert r.status_code == 403, r.text
    with svc.client("GV001") as c:
        r = c.post(f"/api/v1/corrections/{cid}/approve", json={"witnesses": []})
        assert r.status_code == 422 and r.json()["error"] == "witnesses_required", r.text
        r = c.post(f"/api/v1/corrections/{cid}/approve", json={"witnesses": _witnesses(svc)[:1]})
        assert r.status_code == 422 and r.json()["error"] == "witnesses_required", r.text
        not_homeroom = [_witnesses(svc)[0], {"username": svc.username("GV003"),
                                             "capacity": "homeroom_teacher"}]
        r = c.post(f"/api/v1/corrections/{cid}/approve", json={"witnesses": not_homeroom})
        assert r.status_code == 422 and r.json()["error"] == "witness_not_eligible", r.text
        r = c.post(f"/api/v1/corrections/{cid}/apply", json=corrected_bundle(svc, story.student))
        assert r.status_code == 409 and r.json()["error"] == "correction_not_approved", r.text
    refusals = story.audit("approve_correction")[refused_before:]
    assert [(e.actor, e.outcome, e.details["code"]) for e in refusals] == [
        (svc.username("GV003"), "forbidden", "role_lacks_action"),
        (svc.username("GV002"), "forbidden", "role_lacks_action"),
        (svc.username("GV001"), "refused", "witnesses_required"),
        (svc.username("GV001"), "refused", "witnesses_required"),
        (svc.username("GV001"), "refused", "witness_not_eligible"),
    ]
    assert all(e.object_type == "corrections" and e.object_id == str(cid) for e in refusals)
    with svc.sessions() as s:  # nothing but the log changed
        row = s.get(Correction, cid)
        assert row is not None and row.state.value == "requested" and row.approved_by_id is None
        assert not s.scalars(select(CorrectionWitness).where(CorrectionWitness.correction_id == cid)).all()


def test_apply_makes_a_new_revision_only_for_the_changed_record(applied: Story) -> None:
    svc, story = applied.svc, applied
    assert story.applied is not None
    assert story.applied["state"] == "applied"
    (made,) = story.applied["revisions"]
    assert (made["record_id"], made["revision"], made["supersedes_id"]) == (
        story.record_id, 2, story.old_revision_id)
    with svc.client("GV001") as c:
        for code in story.others:
            rid = story.record_id.replace(story.student, code)
            doc = c.get(f"/api/v1/documents/{rid}").json()
            assert [r["state"] for r in doc["revisions"]] == ["archived"], doc
        # Applied once: a second apply of the same correction is refused.
        cid = story.applied["id"]
        r = c.post(f"/api/v1/corrections/{cid}/apply", json=corrected_bundle(svc, story.student))
        assert r.status_code == 409, r.text
        # The data stays locked: a plain import cannot sneak another change in.
        other = corrected_bundle(svc, story.student)
        other["students"][0]["remark"] = "Sửa ngoài quy trình."
        r = c.post("/api/v1/bundles", json=other)
        assert r.status_code == 409 and r.json()["error"] == "bundle_locked", r.text


def test_new_record_supersedes_the_old_which_stays_retrievable(resigned: Story) -> None:
    svc, story = resigned.svc, resigned
    with svc.client("vanthu") as c:
        found = _archive(c, story.student)
        assert len(found) == 2, found
        old, new = sorted(found, key=lambda e: e["revision"])
        assert old["sha256"] == story.old_sha
        assert old["superseded_by"] == new["sha256"] and new["superseded_by"] is None
        assert old["record_id"] == new["record_id"] == story.record_id
        pdfs = {}
        for entry in (old, new):
            pdf = c.get(f"/api/v1/archive/records/{entry['sha256']}/pdf")
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
            assert hashlib.sha256(pdf.content).hexdigest() == entry["sha256"]
            report = c.get(f"/api/v1/archive/records/{entry['sha256']}/report").json()
            assert report["verdict"] == "valid", report
            pdfs[entry["revision"]] = pdf.content
        assert pdfs[1] != pdfs[2]
        # The other students' records were not touched.
        for code, sha in story.others.items():
            assert [e["sha256"] for e in _archive(c, code)] == [sha]
    with svc.client("GV001") as c:
        doc = c.get(f"/api/v1/documents/{story.record_id}").json()
    revs = doc["revisions"]
    assert [(r["revision"], r["state"]) for r in revs] == [(1, "superseded"), (2, "archived")]
    assert revs[1]["supersedes_id"] == revs[0]["revision_id"]
    assert all(s["state"] == "signed" for r in revs for s in r["steps"])
    with svc.client() as anon:
        page = anon.get(f"/v/{story.record_id}")
        assert page.status_code == 200 and "Hồ sơ hợp lệ" in page.text
        public = anon.get(f"/api/v1/public/records/{story.record_id}").json()
        assert public["status"] == "current", public
    with svc.client("GV001") as c:  # the old copy still verifies; the archive says it was replaced
        checked = c.post("/api/v1/verify", content=pdfs[1], headers={"Content-Type": "application/pdf"})
        assert checked.status_code == 200 and checked.json()["verdict"] == "valid"


def test_audit_log_shows_request_approval_witnesses_and_each_step(resigned: Story) -> None:
    svc, story = resigned.svc, resigned
    assert story.applied is not None and story.correction is not None
    cid = str(story.correction["id"])
    new_rev = story.applied["revisions"][0]["revision_id"]
    new_bundle = story.applied["new_bundle_id"]

    (req,) = [e for e in story.audit("request_correction") if e.outcome == "ok"]
    assert (req.actor, req.object_type, req.object_id, req.reason) == (
        svc.username("GV002"), "corrections", cid, REASON)
    assert req.details["record_id"] == story.record_id

    (approval,) = [e for e in story.audit("approve_correction") if e.outcome == "ok"]
    assert (approval.actor, approval.object_id, approval.reason) == (
        svc.username("GV001"), cid, "Đồng ý điều chỉnh.")
    assert approval.details["witnesses"] == [
        {"username": svc.username("qtht"), "capacity": "board_member"},
        {"username": svc.username("GV002"), "capacity": "homeroom_teacher"}]

    (applied,) = story.audit("apply_correction")
    assert (applied.actor, applied.object_id) == (svc.username("GV001"), cid)
    assert (applied.details["new_bundle_id"], applied.details["revisions"]) == (new_bundle, [new_rev])

    created = [e for e in story.audit("create_documents")
               if e.object_type == "bundles" and e.object_id == str(new_bundle)]
    assert [(e.actor, e.details["revisions"]) for e in created] == [(svc.username("GV001"), [new_rev])]

    with svc.sessions() as s:
        steps = {str(st.id): st for st in s.scalars(select(SignatureStep).where(
            SignatureStep.revision_id == new_rev))}
        witnesses = sorted((w.user.username, w.capacity.value) for w in s.scalars(
            select(DocumentRevision).where(DocumentRevision.id == new_rev)).one().correction.witnesses)
        doc_revs = [r.id for r in s.scalars(select(Document).where(
            Document.record_id == story.record_id)).one().revisions]
    assert witnesses == sorted([(svc.username("qtht"), "board_member"),
                                (svc.username("GV002"), "homeroom_teacher")])
    signed = [e for e in story.audit("sign_field")
              if e.object_type == "signature_steps" and e.object_id in steps and e.outcome == "ok"]
    assert sorted(e.object_id for e in signed) == sorted(steps)  # every field, once
    for e in signed:
        st = steps[e.object_id]
        assert e.details["field"] == st.field_name and e.details["record_id"] == story.record_id
        assert e.actor == (svc.username(_staff_code(svc, st.assignee_user_id))
                           if st.assignee_user_id is not None else "system:service"), (e.actor, st.role)
    # And the ends of the road, for the new revision: sealed and archived, superseding the old.
    (seal,) = [e for e in story.audit("seal") if e.object_id == str(new_rev)]
    (arch,) = [e for e in story.audit("archive") if e.object_id == str(new_rev)]
    assert seal.id < arch.id and arch.object_type == "document_revisions"
    assert arch.details["supersedes"] == story.old_sha
    assert doc_revs == [story.old_revision_id, new_rev]
    # In order: request, approval, apply (with its documents), then the signatures.
    order = [req.id, approval.id, created[0].id, applied.id, min(e.id for e in signed), arch.id]
    assert order == sorted(order)


def _staff_code(svc: Service, user_id: int) -> str:
    for t in svc.bundle.teachers:
        if svc.user(t.id).id == user_id:
            return t.id
    raise AssertionError(user_id)
