"""Signing a teacher's batch through a remote-signing provider (CSC, or approval on a phone).

A batch is every field waiting for the teacher (or those of one class, or a list). It runs in
three phases, and the database is never held open across a call to the provider:

1. **Prepare** each field in its own transaction (:func:`hsdt.service.signatures.prepare`:
   scope, window, plan order, the certificate bound to this teacher, revocation). A refusal
   of the *certificate* stops the batch before any hash leaves; a refusal of one record
   (signed by someone meanwhile, out of order) leaves that record out.
2. **Obtain** the signature values: CSC — one authorisation for the whole batch, then
   ``signHash`` with many hashes per call, re-authorising when the SAD expires or a call is
   lost on the way; phone approval — submit, then poll or wait for the callback.
3. **Complete** each record in its own transaction: the value is checked against the
   certificate and the prepared attributes, the record must still be the one prepared
   (a record changed since is refused, never signed stale), and one record failing does not
   undo the others.

Nothing here is signed twice: a field is completed once (the preparation's ``completed_at``
and the revision's conditional update), and a retry of the batch only picks up the fields
still waiting.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select

from hsdt.db import audit
from hsdt.db.models import (
    OPEN_APPROVAL_STATES,
    ApprovalState,
    CallbackReceipt,
    Certificate,
    RemoteAccount,
    RemoteApproval,
    SignatureStep,
    StepState,
    User,
)
from hsdt.service import signatures
from hsdt.service.context import ServiceContext
from hsdt.service.errors import Conflict, NotAuthentic, NotFound, Refused, ServiceError, Unavailable
from hsdt.service.guard import refuse, transaction
from hsdt.signing.appearance import VN_TZ
from hsdt.signing.remote.approval import ApprovalProvider, CallbackRefused, HashToSign
from hsdt.signing.remote.approval import ApprovalState as ProviderState
from hsdt.signing.remote.common import RemoteCertificate, RemoteSigningError
from hsdt.signing.remote.csc import CscClient, CscCredential, Sad, sad_expired
from hsdt.signing.remote.providers import CscProviderConfig, SmartCaProviderConfig

CERTIFICATE_REFUSALS = frozenset({
    "cert_not_bound", "cert_unusable", "cert_unbound", "cert_not_assignee", "cert_revoked", "cert_expired",
    "cert_not_yet_valid", "cert_untrusted", "cert_invalid", "cert_unverifiable", "weak_key",
    "bad_certificate"})
"""Refusals that concern the certificate, not one record: the whole batch stops before any
hash is sent (a revoked, foreign or weak credential must never reach the provider)."""

HASHES_PER_CALL = 20
"""``signHash`` hashes per request: a class in two or three calls, each small enough that a
call lost on the way costs little to send again."""

SIGN_ATTEMPTS = 3
"""Rounds of (re-)authorisation + ``signHash`` before the remaining fields are left waiting."""

Outcome = Literal["signed", "refused", "failed", "pending"]


@dataclass(frozen=True)
class ItemResult:
    step_id: int
    record_id: str | None
    field_name: str | None
    outcome: Outcome
    code: str | None = None
    message: str | None = None


@dataclass
class BatchResult:
    provider: str
    items: list[ItemResult] = field(default_factory=list)
    authorizations: int = 0
    sign_calls: int = 0
    approval_id: str | None = None
    approval_state: str | None = None
    expires_at: datetime | None = None
    provider_seconds: float = 0.0
    """Wall time spent waiting for the provider (for the benchmark's own-code share)."""

    def count(self, outcome: Outcome) -> int:
        return sum(1 for i in self.items if i.outcome == outcome)


@dataclass(frozen=True)
class _Prepared:
    step_id: int
    preparation_id: str
    record_id: str
    field_name: str
    digest: bytes


# --------------------------------------------------------------------------------------------
# Shared phases
# --------------------------------------------------------------------------------------------
def _config(ctx: ServiceContext, provider: str) -> CscProviderConfig | SmartCaProviderConfig:
    try:
        return ctx.remote.get(provider)
    except RemoteSigningError as exc:
        raise Refused(exc.message, code=exc.code) from None


def _account(ctx: ServiceContext, actor_id: int, provider: str) -> RemoteAccount:
    with transaction(ctx.sessions) as session:
        row = session.scalars(select(RemoteAccount).where(RemoteAccount.user_id == actor_id,
                                                          RemoteAccount.provider == provider)).first()
        if row is None:
            raise Refused(f"Tài khoản của bạn chưa được liên kết với nhà cung cấp ký từ xa «{provider}»; "
                          "đề nghị quản trị viên nhà trường liên kết tài khoản trước.",
                          code="no_remote_account")
        session.expunge(row)
        return row


def _selected_steps(ctx: ServiceContext, actor_id: int, step_ids: Sequence[int] | None,
                    class_name: str | None) -> tuple[list[int], list[ItemResult]]:
    """The teacher's waiting fields in the batch, and those asked for that are not waiting."""
    with transaction(ctx.sessions) as session:
        actor = session.get(User, actor_id)
        assert actor is not None
        waiting = signatures.pending(session, actor)
    chosen = [p for p in waiting if class_name is None or p.class_name == class_name]
    if step_ids is None:
        return [p.step_id for p in chosen if p.awaiting_approval_until is None], []
    by_id = {p.step_id: p for p in chosen}
    missing = [ItemResult(s, None, None, "refused", "not_pending",
                          "Ô chữ ký này không đang chờ bạn ký (đã ký, chưa đến lượt hoặc không thuộc bạn).")
               for s in step_ids if s not in by_id]
    return [s for s in step_ids if s in by_id], missing


def _prepare_all(ctx: ServiceContext, actor_id: int, step_ids: Sequence[int], cert: RemoteCertificate,
                 provider: str, ip: str | None, approval_id: str | None = None
                 ) -> tuple[list[_Prepared], list[ItemResult]]:
    prepared: list[_Prepared] = []
    refused: list[ItemResult] = []
    for step_id in step_ids:
        try:
            with transaction(ctx.sessions) as session:
                actor = session.get(User, actor_id)
                assert actor is not None
                out = signatures.prepare(session, ctx, actor, step_id, cert.cert.dump(),
                                         [c.dump() for c in cert.chain], ip=ip, approval_id=approval_id)
        except ServiceError as exc:
            if exc.code in CERTIFICATE_REFUSALS:
                raise Refused(f"Chứng thư số của bạn tại «{provider}» không dùng được để ký: {exc.message} "
                              "Không có mã băm nào được gửi đi.", code=exc.code) from None
            refused.append(ItemResult(step_id, None, None, "refused", exc.code, exc.message))
            continue
        prepared.append(_Prepared(step_id, out["id"], out["record_id"], out["field_name"],
                                  bytes.fromhex(out["to_be_signed_sha256"])))
    return prepared, refused


def _complete(ctx: ServiceContext, actor_id: int, item: _Prepared, value: bytes, ip: str | None
              ) -> ItemResult:
    """One record, one transaction: its failure is its own."""
    try:
        with transaction(ctx.sessions) as session:
            actor = session.get(User, actor_id)
            assert actor is not None
            signatures.complete(session, ctx, actor, item.preparation_id, value, ip=ip)
    except ServiceError as exc:
        _note(ctx, [item.step_id], exc.message)
        return ItemResult(item.step_id, item.record_id, item.field_name, "refused", exc.code, exc.message)
    return ItemResult(item.step_id, item.record_id, item.field_name, "signed")


def _note(ctx: ServiceContext, step_ids: Sequence[int], note: str) -> None:
    """Leave the reason on fields still waiting, for the teacher's list."""
    if not step_ids:
        return
    with transaction(ctx.sessions) as session:
        for step in session.scalars(select(SignatureStep).where(SignatureStep.id.in_(step_ids))):
            if step.state is StepState.WAITING:
                step.remote_note = note[:2000]


# --------------------------------------------------------------------------------------------
# CSC: synchronous, one authorisation per batch
# --------------------------------------------------------------------------------------------
def sign_with_csc(ctx: ServiceContext, actor_id: int, provider: str, *, pin: str, otp: str | None = None,
                  password: str | None = None, step_ids: Sequence[int] | None = None,
                  class_name: str | None = None, credential_id: str | None = None, ip: str | None = None,
                  hashes_per_call: int = HASHES_PER_CALL,
                  client_factory: Callable[[CscProviderConfig], CscClient] | None = None) -> BatchResult:
    """Sign the teacher's waiting fields through a CSC provider with one PIN/OTP entry."""
    cfg = _config(ctx, provider)
    if not isinstance(cfg, CscProviderConfig):
        raise Refused(f"«{provider}» không phải nhà cung cấp CSC.", code="wrong_provider_kind")
    account = _account(ctx, actor_id, provider)
    result = BatchResult(provider)
    step_list, result.items = _selected_steps(ctx, actor_id, step_ids, class_name)
    if not step_list:
        return result
    client = client_factory(cfg) if client_factory else cfg.client(provider)
    with client:
        started = time.perf_counter()
        try:
            client.login(*cfg.login_for(provider, account.account, password))
            credential = _credential(ctx, actor_id, client, credential_id or account.credential_id)
        except RemoteSigningError as exc:
            raise _remote_refusal(exc) from None
        finally:
            result.provider_seconds += time.perf_counter() - started
        if not credential.key_enabled:
            raise Refused(f"Khoá ký {credential.credential_id} đang bị khoá tại nhà cung cấp.",
                          code="key_disabled")
        prepared, refused = _prepare_all(ctx, actor_id, step_list, credential, provider, ip)
        result.items += refused
        if prepared:
            _sign_prepared(ctx, actor_id, client, credential, prepared, pin, otp, ip, hashes_per_call, result)
    _audit_batch(ctx, actor_id, "remote_sign_csc", result, ip)
    return result


def _credential(ctx: ServiceContext, actor_id: int, client: CscClient, wanted: str | None) -> CscCredential:
    """The credential named, or the one whose certificate is registered for this teacher."""
    if wanted:
        return client.credential(wanted)
    ids = client.list_credentials()
    if not ids:
        raise RemoteSigningError(f"Tài khoản không có khoá ký nào tại «{client.name}».", code="no_credential")
    credentials = [client.credential(i) for i in ids]
    with transaction(ctx.sessions) as session:
        mine = set(session.scalars(select(Certificate.fingerprint).where(Certificate.user_id == actor_id)))
    return next((c for c in credentials if c.fingerprint in mine), credentials[0])


def _remote_refusal(exc: RemoteSigningError) -> ServiceError:
    if exc.retryable:
        return Unavailable(exc.message, code=exc.code)
    return Refused(exc.message, code=exc.code)


def _sign_prepared(ctx: ServiceContext, actor_id: int, client: CscClient, credential: CscCredential,
                   prepared: list[_Prepared], pin: str, otp: str | None, ip: str | None,
                   hashes_per_call: int, result: BatchResult) -> None:
    """Authorise once for all (or per ``multisign`` allowance), sign in calls, complete each."""
    algorithm = credential.cert.public_key.algorithm
    remaining = list(prepared)
    sad: Sad | None = None
    last_error: RemoteSigningError | None = None
    for _ in range(SIGN_ATTEMPTS):
        if not remaining:
            break
        try:
            while remaining:
                if sad is None or not sad.hashes:
                    batch = remaining[:max(1, credential.multisign)]
                    t = time.perf_counter()
                    try:
                        sad = client.authorize(credential.credential_id, [p.digest for p in batch], pin, otp,
                                               description=f"HSĐT: ký {len(batch)} hồ sơ")
                    finally:
                        result.provider_seconds += time.perf_counter() - t
                    result.authorizations += 1
                chunk = [p for p in remaining if p.digest in sad.hashes][:hashes_per_call]
                t = time.perf_counter()
                try:
                    values = client.sign_hashes(credential.credential_id, sad, [p.digest for p in chunk],
                                                algorithm)
                finally:
                    result.provider_seconds += time.perf_counter() - t
                    result.sign_calls += 1
                sad = Sad(sad.value, sad.expires_at, tuple(h for h in sad.hashes
                                                          if h not in {p.digest for p in chunk}))
                for item, value in zip(chunk, values, strict=True):
                    result.items.append(_complete(ctx, actor_id, item, value, ip))
                done = {p.preparation_id for p in chunk}
                remaining = [p for p in remaining if p.preparation_id not in done]
        except RemoteSigningError as exc:
            last_error = exc
            if exc.code in ("invalid_pin", "invalid_otp") or not (exc.retryable or sad_expired(exc)):
                break
            sad = None  # stale, spent or lost with the connection: authorise the rest again
    if remaining:
        message = (last_error.message if last_error else "Không nhận được chữ ký.") + (
            " Các hồ sơ này vẫn chờ ký; hãy ký lại (những hồ sơ đã ký không bị ký lần nữa).")
        _note(ctx, [p.step_id for p in remaining], message)
        result.items += [ItemResult(p.step_id, p.record_id, p.field_name, "failed",
                                    last_error.code if last_error else "no_signature", message)
                         for p in remaining]
        if last_error is not None and last_error.code in ("invalid_pin", "invalid_otp") and not any(
                i.outcome == "signed" for i in result.items):
            raise Refused(last_error.message, code=last_error.code)


def _audit_batch(ctx: ServiceContext, actor_id: int, action: str, result: BatchResult,
                 ip: str | None) -> None:
    with transaction(ctx.sessions) as session:
        actor = session.get(User, actor_id)
        assert actor is not None
        audit.record(session, actor=actor, action=action, obj=actor, ip=ip, details={
            "provider": result.provider, "signed": result.count("signed"), "refused": result.count("refused"),
            "failed": result.count("failed"), "authorizations": result.authorizations,
            "approval": result.approval_id})


# --------------------------------------------------------------------------------------------
# Phone approval: asynchronous
# --------------------------------------------------------------------------------------------
def _approval_provider(ctx: ServiceContext, provider: str) -> tuple[SmartCaProviderConfig, ApprovalProvider]:
    cfg = _config(ctx, provider)
    if not isinstance(cfg, SmartCaProviderConfig):
        raise Refused(f"«{provider}» không phải nhà cung cấp ký duyệt trên điện thoại.",
                      code="wrong_provider_kind")
    try:
        return cfg, cfg.provider(provider)
    except RemoteSigningError as exc:
        raise Unavailable(exc.message, code=exc.code) from None


def submit_for_approval(ctx: ServiceContext, actor_id: int, provider: str, *,
                        step_ids: Sequence[int] | None = None, class_name: str | None = None,
                        ip: str | None = None) -> BatchResult:
    """Send the batch's hashes to the teacher's phone; the fields then wait for the answer."""
    cfg, remote = _approval_provider(ctx, provider)
    account = _account(ctx, actor_id, provider)
    result = BatchResult(provider)
    step_list, result.items = _selected_steps(ctx, actor_id, step_ids, class_name)
    if not step_list:
        return result
    try:
        cert = remote.certificate(account.account)
    except RemoteSigningError as exc:
        raise _remote_refusal(exc) from None
    now = ctx.clock()
    approval_id = secrets.token_hex(16)
    with transaction(ctx.sessions) as session:
        session.add(RemoteApproval(id=approval_id, provider=provider, user_id=actor_id,
                                   account=account.account,
                                   cert_fingerprint=cert.fingerprint, state=ApprovalState.SUBMITTING,
                                   created_at=now, expires_at=now + timedelta(minutes=15),
                                   next_poll_at=now + timedelta(seconds=cfg.poll_interval_s),
                                   poll_attempts=0))
    try:
        prepared, refused = _prepare_all(ctx, actor_id, step_list, cert, provider, ip, approval_id)
    except ServiceError as exc:
        _finish(ctx, approval_id, ApprovalState.FAILED, exc.message)
        raise
    result.items += refused
    result.approval_id = approval_id
    if not prepared:
        _finish(ctx, approval_id, ApprovalState.FAILED, "Không còn hồ sơ nào để gửi duyệt.")
        result.approval_state = ApprovalState.FAILED.value
        return result
    try:
        sub = remote.submit(account.account, cert, approval_id,
                            f"HSĐT: ký {len(prepared)} hồ sơ học bạ/sổ", [
                                HashToSign(p.preparation_id, p.digest) for p in prepared])
    except RemoteSigningError as exc:
        _finish(ctx, approval_id, ApprovalState.FAILED, exc.message)
        _note(ctx, [p.step_id for p in prepared],
              f"Không gửi được yêu cầu ký tới «{provider}»: {exc.message}")
        raise _remote_refusal(exc) from None
    with transaction(ctx.sessions) as session:
        row = session.get(RemoteApproval, approval_id)
        assert row is not None
        preps_expire = min(p.expires_at for p in row.preparations)
        row.state = ApprovalState.PENDING
        row.provider_ref = sub.provider_ref
        row.expires_at = min(preps_expire, sub.expires_at) if sub.expires_at else preps_expire
        result.expires_at = row.expires_at
        for step in session.scalars(select(SignatureStep).where(
                SignatureStep.id.in_([p.step_id for p in prepared]))):
            step.remote_note = None
    result.approval_state = ApprovalState.PENDING.value
    result.items += [ItemResult(p.step_id, p.record_id, p.field_name, "pending") for p in prepared]
    _audit_batch(ctx, actor_id, "remote_submit_approval", result, ip)
    return result


def _finish(ctx: ServiceContext, approval_id: str, state: ApprovalState, reason: str | None) -> None:
    with transaction(ctx.sessions) as session:
        row = session.get(RemoteApproval, approval_id)
        if row is not None and row.state in OPEN_APPROVAL_STATES:
            row.state = state
            row.reason = reason
            row.finished_at = ctx.clock()


def approval_view(ctx: ServiceContext, actor_id: int, approval_id: str) -> BatchResult:
    """Where a batch stands (polling the provider first when a poll is due)."""
    with transaction(ctx.sessions) as session:
        row = session.get(RemoteApproval, approval_id)
        if row is None or row.user_id != actor_id:
            raise NotFound("Không có yêu cầu ký này (hoặc nó không phải của bạn).", code="approval_unknown")
        due = row.state in OPEN_APPROVAL_STATES and row.next_poll_at <= ctx.clock()
    if due:
        poll_approval(ctx, approval_id)
    return _view(ctx, approval_id)


def _view(ctx: ServiceContext, approval_id: str) -> BatchResult:
    with transaction(ctx.sessions) as session:
        row = session.get(RemoteApproval, approval_id)
        assert row is not None
        result = BatchResult(row.provider, approval_id=row.id, approval_state=row.state.value,
                             expires_at=row.expires_at)
        for prep in row.preparations:
            step = prep.step
            record_id = step.revision.document.record_id
            if prep.completed_at is not None:
                result.items.append(ItemResult(step.id, record_id, step.field_name, "signed"))
            elif row.state in OPEN_APPROVAL_STATES:
                result.items.append(ItemResult(step.id, record_id, step.field_name, "pending"))
            else:
                result.items.append(ItemResult(step.id, record_id, step.field_name, "failed",
                                               row.state.value, step.remote_note or row.reason))
        return result


def poll_approval(ctx: ServiceContext, approval_id: str) -> ApprovalState:
    """Ask the provider once; complete the batch on approval, release it on refusal or expiry.

    Safe to run twice at once (a callback and the beat): completion is per preparation and
    happens once; the approval's final state is written only while it is still open.
    """
    with transaction(ctx.sessions) as session:
        row = session.get(RemoteApproval, approval_id, with_for_update=True)
        if row is None:
            raise NotFound("Không có yêu cầu ký này.", code="approval_unknown")
        if row.state not in OPEN_APPROVAL_STATES:
            return row.state
        provider, actor_id, attempts = row.provider, row.user_id, row.poll_attempts
        expires_at = row.expires_at
        preps = [(p.step_id, p.id, p.step.revision.document.record_id, p.step.field_name, p.completed_at)
                 for p in row.preparations]
    cfg, remote = _approval_provider(ctx, provider)
    try:
        status = remote.status(approval_id)
    except RemoteSigningError as exc:
        _reschedule(ctx, approval_id, cfg, attempts, note=exc.message)
        if ctx.clock() > expires_at:
            return _release(ctx, approval_id, ApprovalState.EXPIRED, _expired_text(expires_at), preps)
        return ApprovalState.PENDING
    if status.state is ProviderState.PENDING:
        if ctx.clock() > expires_at:
            return _release(ctx, approval_id, ApprovalState.EXPIRED, _expired_text(expires_at), preps)
        _reschedule(ctx, approval_id, cfg, attempts)
        return ApprovalState.PENDING
    if status.state is ProviderState.REJECTED:
        reason = status.reason or "không ghi lý do"
        return _release(ctx, approval_id, ApprovalState.REJECTED,
                        f"Bạn đã từ chối trên điện thoại: {reason}.",
                        preps)
    if status.state is ProviderState.EXPIRED:
        return _release(ctx, approval_id, ApprovalState.EXPIRED, _expired_text(expires_at, status.reason),
                        preps)
    values: Mapping[str, bytes] = status.signatures or {}
    for step_id, prep_id, record_id, field_name, completed_at in preps:
        if completed_at is not None:
            continue
        value = values.get(prep_id)
        if value is None:
            _note(ctx, [step_id], f"«{provider}» không trả về chữ ký cho hồ sơ này; hãy ký lại.")
            continue
        _complete(ctx, actor_id, _Prepared(step_id, prep_id, record_id, field_name, b""), value, None)
    _finish(ctx, approval_id, ApprovalState.COMPLETED, None)
    return ApprovalState.COMPLETED


def _expired_text(expires_at: datetime, reason: str | None = None) -> str:
    return (f"Hết thời gian chờ xác nhận trên điện thoại ({expires_at.astimezone(VN_TZ):%H:%M %d/%m/%Y})"
            + (f": {reason}" if reason else "") + ". Không có gì được ký; hãy gửi lại khi sẵn sàng xác nhận.")


def _reschedule(ctx: ServiceContext, approval_id: str, cfg: SmartCaProviderConfig, attempts: int,
                note: str | None = None) -> None:
    """Exponential backoff between polls, capped: a phone may take minutes to answer."""
    wait = min(cfg.poll_max_interval_s, cfg.poll_interval_s * 2 ** min(attempts, 16))
    with transaction(ctx.sessions) as session:
        row = session.get(RemoteApproval, approval_id)
        if row is not None and row.state in OPEN_APPROVAL_STATES:
            row.poll_attempts = attempts + 1
            row.next_poll_at = ctx.clock() + timedelta(seconds=wait)
            if note:
                row.reason = note


def _release(ctx: ServiceContext, approval_id: str, state: ApprovalState, reason: str,
             preps: list[tuple[int, str, str, str, datetime | None]]) -> ApprovalState:
    """Rejected or expired: nothing is signed; the fields wait again, with the reason."""
    _finish(ctx, approval_id, state, reason)
    _note(ctx, [p[0] for p in preps if p[4] is None], reason)
    with transaction(ctx.sessions) as session:
        row = session.get(RemoteApproval, approval_id)
        assert row is not None
        audit.record(session, actor=row.user, action=f"remote_approval_{state.value}", obj=row.user,
                     reason=reason, details={"approval": approval_id, "provider": row.provider})
    return state


def poll_due(ctx: ServiceContext, limit: int = 50) -> dict[str, ApprovalState]:
    """Poll every open batch whose next poll is due (the beat's job; also ``hsdt remote poll``)."""
    with transaction(ctx.sessions) as session:
        ids = list(session.scalars(select(RemoteApproval.id).where(
            RemoteApproval.state.in_(OPEN_APPROVAL_STATES), RemoteApproval.next_poll_at <= ctx.clock())
            .order_by(RemoteApproval.next_poll_at).limit(limit)))
    return {i: poll_approval(ctx, i) for i in ids}


def accept_callback(ctx: ServiceContext, provider: str, headers: Mapping[str, str], body: bytes,
                    ip: str | None = None) -> str:
    """A provider's callback: authenticate it, refuse a replay, and return the batch it is about.

    The caller then polls that batch (:func:`poll_approval`) — after answering the provider,
    which should not wait while a class is being completed.
    """
    _, remote = _approval_provider(ctx, provider)
    with transaction(ctx.sessions) as session:  # also where a refusal's audit entry is committed
        try:
            event = remote.parse_callback(headers, body, ctx.clock())
        except CallbackRefused as exc:
            raise refuse(f"provider:{provider}", "remote_callback", NotAuthentic(exc.message, code=exc.code),
                         ip=ip) from None
        if session.get(CallbackReceipt, (provider, event.event_id)) is not None:
            raise refuse(f"provider:{provider}", "remote_callback", Conflict(
                "Thông báo gọi lại này đã được nhận trước đó (gửi lại/phát lại); bỏ qua.",
                code="callback_replayed"), ip=ip, details={"event_id": event.event_id})
        row = session.get(RemoteApproval, event.transaction_id)
        if row is None or row.provider != provider:
            raise refuse(f"provider:{provider}", "remote_callback", NotFound(
                "Thông báo gọi lại nói về một yêu cầu ký không có.", code="approval_unknown"),
                ip=ip, details={"event_id": event.event_id, "transaction": event.transaction_id})
        session.add(CallbackReceipt(provider=provider, event_id=event.event_id, received_at=ctx.clock()))
        row.next_poll_at = ctx.clock()  # due now, for whoever polls first
        audit.record(session, actor=f"provider:{provider}", action="remote_callback", obj=row, ip=ip,
                     details={"event_id": event.event_id, "status": event.state.value})
    return event.transaction_id


def link_account(ctx: ServiceContext, user_id: int, provider: str, account: str,
                 credential_id: str | None = None) -> None:
    """Record a person's provider account (the school administrator's job; provisioning)."""
    _config(ctx, provider)
    with transaction(ctx.sessions) as session:
        row = session.scalars(select(RemoteAccount).where(RemoteAccount.user_id == user_id,
                                                          RemoteAccount.provider == provider)).first()
        if row is None:
            session.add(RemoteAccount(user_id=user_id, provider=provider, account=account,
                                      credential_id=credential_id))
        else:
            row.account, row.credential_id = account, credential_id


__all__ = ["BatchResult", "ItemResult", "accept_callback", "link_account", "poll_approval", "poll_due",
           "sign_with_csc", "submit_for_approval"]

