"""A person's signatures: what waits for them, prepare, complete, reject.

The key never reaches the server (USB token, remote service): :func:`prepare` runs every
rule — scope and duty (Điều 10), the signing window (Điều 13), the plan's order, the
certificate bound to *this* account — before anything is sent to be signed, and
:func:`complete` runs them again with the returned value. Each refusal is audited.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import x509 as asn1_x509
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from hsdt.db import audit
from hsdt.db.models import (
    OPEN_APPROVAL_STATES,
    Certificate,
    Document,
    DocumentRevision,
    DocumentState,
    RemoteApproval,
    SchoolClass,
    SignaturePreparation,
    SignatureStep,
    StepState,
    User,
    WindowKind,
)
from hsdt.db.scope import Action, visible_classes_query
from hsdt.domain.errors import SigningRefused
from hsdt.service.context import ServiceContext
from hsdt.service.errors import Conflict, NotFound, Refused
from hsdt.service.guard import refuse, require
from hsdt.service.records import open_stage, record_of, record_signature, require_window
from hsdt.signing.appearance import VN_TZ
from hsdt.signing.deferred import DeferredState

OPEN_STATES = (DocumentState.CERTIFIED, DocumentState.SIGNING)


@dataclass(frozen=True)
class PendingSignature:
    step_id: int
    record_id: str
    field_name: str
    role: str
    subject: str | None
    stage: int
    student_code: str
    class_name: str
    school_year: str
    term: str
    awaiting_approval_until: datetime | None = None
    """Sent to the teacher's phone for approval, waiting until then (remote signing)."""
    remote_note: str | None = None
    """Why the last remote signing of this field did not land, if it did not."""


def pending(session: Session, actor: User) -> list[PendingSignature]:
    """The fields waiting for ``actor`` now: assigned to them, their stage open, in their scope."""
    rows = session.execute(
        select(SignatureStep, Document, SchoolClass)
        .join(DocumentRevision, DocumentRevision.id == SignatureStep.revision_id)
        .join(Document, Document.id == DocumentRevision.document_id)
        .join(SchoolClass, SchoolClass.id == Document.class_id)
        .where(SignatureStep.assignee_user_id == actor.id, SignatureStep.state == StepState.WAITING,
               SignatureStep.stage == DocumentRevision.stage, DocumentRevision.state.in_(OPEN_STATES),
               Document.class_id.in_(visible_classes_query(actor.id)))
        .order_by(Document.record_id, SignatureStep.stage, SignatureStep.field_name)).all()
    awaiting = awaiting_approval(session, [s.id for s, _, _ in rows])
    return [PendingSignature(s.id, d.record_id, s.field_name, s.role.value, s.subject, s.stage,
                             d.student_code, c.name, d.school_year, d.term.value, awaiting.get(s.id),
                             s.remote_note) for s, d, c in rows]


def awaiting_approval(session: Session, step_ids: list[int]) -> dict[int, datetime]:
    """Step id → until when it waits for a phone approval, for the steps that do."""
    if not step_ids:
        return {}
    rows = session.execute(
        select(SignaturePreparation.step_id, RemoteApproval.expires_at)
        .join(RemoteApproval, RemoteApproval.id == SignaturePreparation.approval_id)
        .where(SignaturePreparation.step_id.in_(step_ids), SignaturePreparation.completed_at.is_(None),
               RemoteApproval.state.in_(OPEN_APPROVAL_STATES))).all()
    return {step_id: until for step_id, until in rows}


def _step(session: Session, step_id: int) -> SignatureStep:
    step = session.get(SignatureStep, step_id, options=[joinedload(SignatureStep.revision)])
    if step is None:
        raise NotFound(f"Không có ô chữ ký {step_id}.")
    return step


def _check_step_open(session: Session, ctx: ServiceContext, actor: User, step: SignatureStep,
                     action: Action, ip: str | None) -> DocumentRevision:
    require(session, actor, action, step, ip=ip)
    rev = step.revision
    doc = rev.document
    if step.state is not StepState.WAITING:
        raise refuse(actor, action, Conflict(
            f"Ô «{step.field_name}» của hồ sơ {doc.record_id} đã "
            f"{'được ký' if step.state is StepState.SIGNED else 'bị từ chối'}.",
            code="already_signed" if step.state is StepState.SIGNED else "step_rejected"), obj=step, ip=ip)
    if rev.state not in OPEN_STATES:
        raise refuse(actor, action, Conflict(
            f"Hồ sơ {doc.record_id} đang ở trạng thái «{rev.state.value}», không nhận chữ ký.",
            code="not_signable"), obj=step, ip=ip)
    stage = open_stage(rev)
    if step.stage != stage:
        waiting = [s.field_name for s in rev.steps if s.state is StepState.WAITING and s.stage == stage]
        raise refuse(actor, action, Refused(
            f"Chưa đến lượt ký ô «{step.field_name}»: hồ sơ {doc.record_id} còn chờ "
            f"{', '.join(waiting)} (ký theo trình tự của kế hoạch).", code="out_of_order"),
            obj=step, ip=ip)
    require_window(session, actor, action, WindowKind.SIGNING, doc.school_class, doc.term.value,
                   ctx.clock(), obj=step, ip=ip)
    return rev


def prepare(session: Session, ctx: ServiceContext, actor: User, step_id: int, cert_der: bytes,
            chain_der: list[bytes], *, ip: str | None = None, approval_id: str | None = None
            ) -> dict[str, Any]:
    """Check everything and return what the client's key must sign (the state stays here).

    ``approval_id``: the phone-approval batch the preparation goes out in. A field already
    waiting on someone's phone is not prepared again: its approval decides it first.
    """
    step = _step(session, step_id)
    rev = _check_step_open(session, ctx, actor, step, Action.SIGN_FIELD, ip)
    waiting_until = awaiting_approval(session, [step.id]).get(step.id)
    if waiting_until is not None:
        raise refuse(actor, Action.SIGN_FIELD, Conflict(
            f"Ô «{step.field_name}» của hồ sơ {rev.document.record_id} đang chờ xác nhận trên điện "
            f"thoại (đến {waiting_until.astimezone(VN_TZ):%H:%M %d/%m/%Y}); hãy xác nhận hoặc từ chối "
            "trên ứng dụng, hoặc chờ hết hạn rồi ký lại.", code="awaiting_approval"), obj=step, ip=ip)
    fp = hashlib.sha256(cert_der).hexdigest()
    cert_row = session.scalars(select(Certificate).where(Certificate.fingerprint == fp)).first()
    if cert_row is None or cert_row.user_id != actor.id:
        raise refuse(actor, Action.SIGN_FIELD, Refused(
            "Chứng thư số này không được đăng ký cho tài khoản của bạn; không ai được ký thay "
            "người khác (Điều 10). Đề nghị quản trị viên đăng ký chứng thư của bạn.",
            code="cert_not_bound"), obj=step, ip=ip, details={"certificate": fp})
    if not cert_row.usable_at(ctx.clock()):
        raise refuse(actor, Action.SIGN_FIELD, Refused(
            "Chứng thư số đã bị thu hồi trong hệ thống hoặc đang ngoài thời hạn hiệu lực.",
            code="cert_unusable"), obj=step, ip=ip, details={"certificate": fp})
    try:
        cert = asn1_x509.Certificate.load(cert_der)
        chain = [asn1_x509.Certificate.load(c) for c in chain_der]
        _ = cert.subject, [c.subject for c in chain]
    except (ValueError, TypeError) as exc:
        raise Refused(f"Chứng thư số gửi lên không đọc được: {exc}", code="bad_certificate") from None
    record = record_of(rev)
    try:
        with ctx.deferred_for(session, rev.document.school) as deferred:
            prepared = deferred.prepare(ctx.workspace.get(rev.pdf_sha256 or ""), step.field_name, cert,
                                        chain, expected_data_sha256=record.data_sha256)
    except SigningRefused as exc:
        raise refuse(actor, Action.SIGN_FIELD, Refused(exc.message, code=exc.code), obj=step, ip=ip,
                     details={"certificate": fp}) from None
    session.add(SignaturePreparation(id=prepared.id, step_id=step.id, user_id=actor.id,
                                     record_sha256=prepared.record_sha256, cert_fingerprint=fp,
                                     expires_at=prepared.expires_at, state=prepared.state,
                                     approval_id=approval_id))
    session.flush()
    audit.record(session, actor=actor, action="prepare_signature", obj=step, ip=ip,
                 details={"preparation": prepared.id, "certificate": fp})
    doc = rev.document
    return {**prepared.for_client(), "step_id": step.id, "student_code": doc.student_code,
            "student_name": record.student.full_name, "class_name": doc.school_class.name,
            "school_year": doc.school_year, "term": doc.term.value, "label": _label(record, step)}


def _label(record: Any, step: SignatureStep) -> str:
    from hsdt.workflow import plan_of

    return plan_of(record).field(step.field_name).label


def complete(session: Session, ctx: ServiceContext, actor: User, preparation_id: str,
             signature_value: bytes, *, ip: str | None = None) -> DocumentRevision:
    """Embed a signature value returned for a preparation of this user's."""
    prep = session.get(SignaturePreparation, preparation_id)
    if prep is None or prep.user_id != actor.id:
        raise NotFound("Không có phiên chuẩn bị ký này (hoặc nó không phải của bạn).",
                       code="preparation_unknown")
    step = prep.step
    if prep.completed_at is not None:
        raise Conflict("Chữ ký của phiên chuẩn bị này đã được nhận.", code="already_completed")
    rev = _check_step_open(session, ctx, actor, step, Action.SIGN_FIELD, ip)
    try:
        with ctx.deferred_for(session, rev.document.school) as deferred:
            pdf = deferred.complete(DeferredState.from_bytes(prep.state), signature_value,
                                    record=ctx.workspace.get(rev.pdf_sha256 or ""))
    except SigningRefused as exc:
        raise refuse(actor, Action.SIGN_FIELD, Refused(exc.message, code=exc.code), obj=step, ip=ip,
                     details={"preparation": prep.id}) from None
    prep.completed_at = ctx.clock()
    step.remote_note = None
    record_signature(session, ctx, rev, step, pdf, prep.cert_fingerprint, actor, ip=ip)
    return rev


def reject(session: Session, ctx: ServiceContext, actor: User, step_id: int, reason: str, *,
           ip: str | None = None) -> DocumentRevision:
    """Refuse to sign, with a reason: the record goes back for correction of its data."""
    step = _step(session, step_id)
    rev = _check_step_open(session, ctx, actor, step, Action.REJECT_FIELD, ip)
    if not reason or not reason.strip():
        raise refuse(actor, Action.REJECT_FIELD, Refused("Cần ghi rõ lý do từ chối ký.",
                                                         code="reason_required"), obj=step, ip=ip)
    step.state = StepState.REJECTED
    step.rejected_at = ctx.clock()
    step.reject_reason = reason.strip()
    step.acted_by_id = actor.id
    rev.state = DocumentState.REJECTED
    session.flush()
    audit.record(session, actor=actor, action="reject_field", obj=step, ip=ip, reason=reason.strip(),
                 details={"field": step.field_name, "record_id": rev.document.record_id})
    return rev


def b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise Refused(f"{what} không phải base64 hợp lệ.", code="bad_base64") from None
