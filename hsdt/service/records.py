"""Bundles in, records out: import, lock, render, certify, and the end of the road (archive).

Each function takes the acting user (or ``None`` for the service itself, in a worker), checks
the rule table first, and changes state only as the plan allows. A record's working PDF is
named by its SHA-256 (:mod:`hsdt.service.workspace`); the revision row points at the current
one, and a signature that would land on stale bytes is refused by comparing digests in the
database (:func:`_move_pdf`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hsdt.db import audit
from hsdt.db.bindings import staff_user_ids
from hsdt.db.models import (
    ArchiveEntry,
    Bundle,
    BundleLock,
    Document,
    DocumentRevision,
    DocumentState,
    OrgUnit,
    OrgUnitKind,
    SchoolClass,
    SignatureStep,
    StepState,
    User,
    WindowKind,
)
from hsdt.db.scope import Action, open_window
from hsdt.domain.bundles import decode_json, lock_bundle, parse_bundle
from hsdt.domain.plans import Role as PlanRole
from hsdt.domain.records import Record, record_for
from hsdt.domain.schema import LockedBundle, TermBundle
from hsdt.service.context import ServiceContext
from hsdt.service.errors import Conflict, NotFound, Refused, ServiceError
from hsdt.service.guard import refuse, require
from hsdt.workers.tasks import checkpoint
from hsdt.workflow import plan_of, render

KIND = "hoc_ba_thcs"
SYSTEM = "system:service"


# --------------------------------------------------------------------------------------------
# Bundles
# --------------------------------------------------------------------------------------------
def _class_of(session: Session, bundle: TermBundle) -> SchoolClass:
    school = session.scalars(select(OrgUnit).where(OrgUnit.code == bundle.school.code,
                                                   OrgUnit.kind == OrgUnitKind.SCHOOL)).first()
    if school is None:
        raise NotFound(f"Trường {bundle.school.code} chưa có trong hệ thống; quản trị viên của Sở/Phòng "
                       "cần tạo trường trước khi nhập dữ liệu.", code="school_unknown")
    klass = session.scalars(select(SchoolClass).where(
        SchoolClass.school_id == school.id, SchoolClass.school_year == bundle.school_year,
        SchoolClass.name == bundle.class_.name)).first()
    if klass is None:
        raise NotFound(f"Lớp {bundle.class_.name} năm học {bundle.school_year} chưa có trong trường "
                       f"{bundle.school.code}.", code="class_unknown")
    return klass


def require_window(session: Session, actor: User, action: Action, kind: WindowKind, klass: SchoolClass,
                   term: str, now: datetime, *, obj: object, ip: str | None) -> None:
    """Điều 13: outside an open window of ``kind`` nothing changes."""
    from hsdt.domain.schema import Term

    if open_window(session, kind, klass, Term(term), now) is None:
        what = "nhập dữ liệu" if kind is WindowKind.DATA_ENTRY else "ký"
        raise refuse(actor, action, Refused(
            f"Lớp {klass.name} ({klass.school_year}, học kỳ {term}) đang khoá {what}: không có khung "
            f"thời gian {what} nào đang mở. Đề nghị quản trị viên mở khung thời gian (Điều 13).",
            code="window_closed"), obj=obj, ip=ip)  # type: ignore[arg-type]


def import_bundle(session: Session, ctx: ServiceContext, actor: User, raw: bytes, *,
                  ip: str | None = None) -> Bundle:
    """Check and store a class's term data (not locked yet). The same bytes twice: one row."""
    bundle = parse_bundle(decode_json(raw, "dữ liệu gửi lên"))
    klass = _class_of(session, bundle)
    require(session, actor, Action.IMPORT_BUNDLE, klass, ip=ip)
    require_window(session, actor, Action.IMPORT_BUNDLE, WindowKind.DATA_ENTRY, klass, bundle.term,
                   ctx.clock(), obj=klass, ip=ip)
    row = Bundle.from_domain(bundle, school=klass.school, school_class=klass)
    existing = session.scalars(select(Bundle).where(Bundle.sha256 == row.sha256)).first()
    if existing is not None:
        return existing
    latest = session.scalars(select(Bundle).where(Bundle.class_id == klass.id, Bundle.term == bundle.term)
                             .order_by(Bundle.revision.desc())).first()
    if latest is not None:
        if latest.lock is not None:
            raise refuse(actor, Action.IMPORT_BUNDLE, Conflict(
                f"Dữ liệu học kỳ {bundle.term} của lớp {klass.name} đã khoá (gói {latest.id}); "
                "muốn sửa phải lập yêu cầu điều chỉnh (Điều 11.4).", code="bundle_locked"),
                obj=latest, ip=ip)
        row.revision, row.supersedes = latest.revision + 1, latest
    row.imported_by_id = actor.id
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="import_bundle", obj=row, ip=ip,
                 details={"sha256": row.sha256, "revision": row.revision})
    return row


def get_bundle(session: Session, actor: User, bundle_id: int, action: Action, ip: str | None = None
               ) -> Bundle:
    row = session.get(Bundle, bundle_id)
    if row is None:
        raise NotFound(f"Không có gói dữ liệu {bundle_id}.")
    require(session, actor, action, row, ip=ip)
    return row


def lock(session: Session, ctx: ServiceContext, actor: User, bundle_id: int, *, ip: str | None = None
         ) -> BundleLock:
    """Lock a bundle (Điều 14): its digest goes into every record made from it."""
    row = get_bundle(session, actor, bundle_id, Action.LOCK_BUNDLE, ip)
    if row.lock is not None:
        return row.lock
    latest = session.scalars(select(Bundle.id).where(Bundle.supersedes_id == row.id)).first()
    if latest is not None:
        raise Conflict(f"Gói {row.id} đã được thay bằng gói {latest}.", code="bundle_superseded")
    locked = lock_bundle(row.to_domain(), actor.full_name, now=ctx.clock())
    lock_row = BundleLock.from_domain(locked.lock, row, actor)
    session.add(lock_row)
    session.flush()
    audit.record(session, actor=actor, action="lock_bundle", obj=row, ip=ip,
                 details={"sha256": row.sha256})
    return lock_row


def locked_bundle(row: Bundle) -> LockedBundle:
    if row.lock is None:
        raise Conflict(f"Gói dữ liệu {row.id} chưa khoá; hãy khoá trước khi tạo hồ sơ.",
                       code="bundle_not_locked")
    return LockedBundle(lock=row.lock.to_domain(), bundle=row.to_domain())


# --------------------------------------------------------------------------------------------
# Documents: create, render, certify
# --------------------------------------------------------------------------------------------
def record_of(revision: DocumentRevision) -> Record:
    locked = locked_bundle(revision.bundle)
    code = revision.document.student_code
    student = next((s for s in locked.bundle.students if s.code == code), None)
    if student is None:
        raise ServiceError(f"Học sinh {code} không có trong gói dữ liệu {revision.bundle_id}.",
                           code="student_missing")
    record = record_for(locked, student, revision.document.kind)
    if record.data_sha256 != revision.data_sha256:
        raise ServiceError(f"Dữ liệu của hồ sơ {record.record_id} không khớp bản đã khoá.",
                           code="data_mismatch")
    return record


def create_documents(session: Session, actor: User | None, bundle: Bundle, *, ip: str | None = None,
                     correction_id: int | None = None) -> list[DocumentRevision]:
    """One revision per student whose record is new or whose data changed; the plan's steps.

    A revision made from a corrected bundle supersedes the document's latest one.
    """
    locked = locked_bundle(bundle)
    users = staff_user_ids(session, bundle.school)
    made: list[DocumentRevision] = []
    earlier: dict[int, LockedBundle] = {}
    for student in locked.bundle.students:
        record = record_for(locked, student, KIND)
        doc = session.scalars(select(Document).where(Document.record_id == record.record_id)).first()
        if doc is None:
            doc = Document(record_id=record.record_id, kind=KIND, student_code=student.code,
                           school=bundle.school, school_year=bundle.school_year, term=bundle.term,
                           school_class=bundle.school_class)
            session.add(doc)
        latest = doc.revisions[-1] if doc.revisions else None
        if latest is not None and (latest.data_sha256 == record.data_sha256
                                   or latest.bundle_id == bundle.id
                                   or _same_but_lock(latest, record, earlier)):
            continue
        rev = DocumentRevision(document=doc, revision=(latest.revision + 1) if latest else 1,
                               bundle=bundle, data_sha256=record.data_sha256, supersedes=latest,
                               correction_id=correction_id, state=DocumentState.PENDING)
        session.add(rev)
        plan = plan_of(record)
        for step in SignatureStep.from_plan(plan, users):
            step.revision = rev
            session.add(step)
        made.append(rev)
    session.flush()
    audit.record(session, actor=actor or SYSTEM, action="create_documents", obj=bundle, ip=ip,
                 details={"revisions": [r.id for r in made]})
    return made


def _same_but_lock(latest: DocumentRevision, record: Record, cache: dict[int, LockedBundle]) -> bool:
    """Whether ``record`` differs from the latest revision's only by the bundle lock — the
    digest and time of a corrected bundle, which change every student's data_sha256 although
    only the corrected students' data did (Điều 11.4: the others' signed records stand)."""
    if latest.bundle_id not in cache:
        cache[latest.bundle_id] = locked_bundle(latest.bundle)
    old = cache[latest.bundle_id]
    student = next((s for s in old.bundle.students if s.code == record.student.code), None)
    if student is None:
        return False
    before = record_for(old, student, latest.document.kind).data
    return ({k: v for k, v in before.items() if k != "bundle_lock"}
            == {k: v for k, v in record.data.items() if k != "bundle_lock"})


def render_revision(session: Session, ctx: ServiceContext, revision_id: int) -> DocumentRevision:
    """Render a pending revision into its PDF/A (idempotent: a rendered one is left alone)."""
    rev = _revision(session, revision_id)
    if rev.state is not DocumentState.PENDING:
        return rev
    pdf = render(record_of(rev))
    rev.pdf_sha256 = ctx.workspace.put(pdf)
    rev.pdf_key = rev.pdf_sha256
    rev.state = DocumentState.RENDERED
    session.flush()
    return rev


def certify_revision(session: Session, ctx: ServiceContext, revision_id: int, actor: User | None = None,
                     *, ip: str | None = None) -> DocumentRevision:
    """The school seal's certification (stage 0) with the key the server holds on its HSM."""
    rev = _revision(session, revision_id)
    if rev.state is DocumentState.PENDING:
        render_revision(session, ctx, revision_id)
    for step in [s for s in rev.steps if s.role is PlanRole.SCHOOL_SEAL and s.state is StepState.WAITING]:
        if actor is not None:
            require(session, actor, Action.SIGN_FIELD, step, ip=ip)
        if step.stage != open_stage(rev):
            raise Conflict(f"Ô «{step.field_name}» chưa đến lượt ký.", code="out_of_order")
        school = rev.document.school
        key = ctx.seal_key(school.code)
        if key is None:
            raise ServiceError(f"Máy chủ không giữ khoá con dấu của trường {school.code}.",
                               code="seal_key_missing")
        record = record_of(rev)
        with ctx.signer_for(session, school) as signer:
            pdf = signer.sign(ctx.workspace.get(rev.pdf_sha256 or ""), step.field_name, key,
                              expected_data_sha256=record.data_sha256)
        record_signature(session, ctx, rev, step, pdf, key.fingerprint, actor)
    return rev


def open_stage(rev: DocumentRevision) -> int | None:
    waiting = [s.stage for s in rev.steps if s.state is StepState.WAITING]
    return min(waiting) if waiting else None


def record_signature(session: Session, ctx: ServiceContext, rev: DocumentRevision, step: SignatureStep,
                     pdf: bytes, cert_fingerprint: str, actor: User | None, *, ip: str | None = None
                     ) -> None:
    """The new bytes become the revision's current PDF — only if nobody moved it meanwhile."""
    old = rev.pdf_sha256
    new = ctx.workspace.put(pdf)
    moved = session.execute(update(DocumentRevision).where(
        DocumentRevision.id == rev.id, DocumentRevision.pdf_sha256 == old).values(
        pdf_sha256=new, pdf_key=new).execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        raise Conflict("Hồ sơ vừa được ký bởi người khác; hãy tải lại và ký trên bản mới.",
                       code="record_changed")
    rev.pdf_sha256 = rev.pdf_key = new
    step.state = StepState.SIGNED
    step.signed_at = ctx.clock()
    step.cert_fingerprint = cert_fingerprint
    step.pdf_sha256 = new
    step.acted_by_id = actor.id if actor else None
    stage = open_stage(rev)
    rev.stage = stage
    if stage is None:
        rev.state = DocumentState.SIGNED
    elif step.role is PlanRole.SCHOOL_SEAL:
        rev.state = DocumentState.CERTIFIED
    else:
        rev.state = DocumentState.SIGNING
    session.flush()
    audit.record(session, actor=actor or SYSTEM, action="sign_field", obj=step, ip=ip,
                 details={"field": step.field_name, "record_id": rev.document.record_id,
                          "certificate": cert_fingerprint, "pdf_sha256": new})


def _revision(session: Session, revision_id: int) -> DocumentRevision:
    rev = session.get(DocumentRevision, revision_id, with_for_update=True)
    if rev is None:
        raise NotFound(f"Không có phiên bản hồ sơ {revision_id}.")
    return rev


# --------------------------------------------------------------------------------------------
# The end: B-LTA seal and archive
# --------------------------------------------------------------------------------------------
def seal_revision(session: Session, ctx: ServiceContext, revision_id: int) -> DocumentRevision:
    """SIGNED → SEALED: DSS and the document timestamp (B-LTA). Idempotent by state."""
    rev = _revision(session, revision_id)
    if rev.state is DocumentState.SIGNED:
        record = record_of(rev)
        with ctx.signer_for(session, rev.document.school) as signer:
            sealed = signer.seal(ctx.workspace.get(rev.pdf_sha256 or ""),
                                 expected_data_sha256=record.data_sha256)
        rev.pdf_sha256 = rev.pdf_key = ctx.workspace.put(sealed)
        rev.state = DocumentState.SEALED
        session.flush()
        audit.record(session, actor=SYSTEM, action="seal", obj=rev, details={"pdf_sha256": rev.pdf_sha256})
    return rev


def archive_revision(session: Session, ctx: ServiceContext, revision_id: int) -> DocumentRevision:
    """SEALED → ARCHIVED. The sealed bytes are fixed by then, so a retry after a crash between
    the store and the commit finds the same object in the archive and stores nothing twice."""
    rev = _revision(session, revision_id)
    if rev.state is DocumentState.SEALED:
        _archive(session, ctx, rev)
    return rev


STEPS: dict[str, tuple[Callable[[Session, ServiceContext, int], DocumentRevision], ...]] = {
    "render": (render_revision,),
    "certify": (certify_revision,),
    "finish": (seal_revision, archive_revision),
}
"""What each dispatched step runs, in order. Workers commit after each part: a seal is not
reproducible byte for byte (its timestamp), so it is committed before its bytes are archived."""


def _archive(session: Session, ctx: ServiceContext, rev: DocumentRevision) -> None:
    old = rev.supersedes
    old_entry = None
    if old is not None:
        old_entry = session.scalars(select(ArchiveEntry).where(
            ArchiveEntry.document_revision_id == old.id, ArchiveEntry.renewed_from.is_(None))).first()
    pdf = ctx.workspace.get(rev.pdf_sha256 or "")
    # Verified before the archive's lock: several workers verify at once, and only the
    # store, log and index of one record at a time are serialised.
    report = ctx.verifier_for(session, rev.document.school).verify(pdf)
    with ctx.archive_for(session, rev.document.school) as archive:
        entry, _report = archive.ingest(pdf, supersedes=old_entry.sha256 if old_entry else None,
                                        verified=report)
    checkpoint("finish:archived", rev.document.record_id)
    row = session.get(ArchiveEntry, entry.sha256)
    if row is None:
        values = {k: getattr(entry, k) for k in (
            "sha256", "record_id", "kind", "student_code", "school_code", "school_year", "revision", "key",
            "version_id", "size", "retain_until", "stored_at", "report_key", "log_index", "superseded_by",
            "renewed_from")}
        session.add(ArchiveEntry(**values, document_revision_id=rev.id))
    if old_entry is not None:
        old_entry.superseded_by = entry.sha256
        old.state = DocumentState.SUPERSEDED  # type: ignore[union-attr]
    rev.state = DocumentState.ARCHIVED
    session.flush()
    audit.record(session, actor=SYSTEM, action="archive", obj=rev,
                 details={"sha256": entry.sha256, "version_id": entry.version_id,
                          "supersedes": old_entry.sha256 if old_entry else None})


def bundle_summary(row: Bundle) -> dict[str, object]:
    return {"id": row.id, "sha256": row.sha256, "revision": row.revision, "school_year": row.school_year,
            "term": str(row.term), "class": row.school_class.name, "school": row.school.code,
            "locked": row.lock is not None,
            "students": len(json.loads(row.canonical_json).get("students", []))}
