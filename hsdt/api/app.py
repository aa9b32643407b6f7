"""The REST API: a thin layer that reads the request, calls :mod:`hsdt.service`, answers.

Every handler runs one unit of work (:func:`hsdt.service.guard.transaction`): it commits
what the service did, or rolls it back and keeps only the audit entry of a refusal.
Handlers are plain ``def``: FastAPI runs them on its thread pool, and the service's signing
lock serialises what must not run concurrently.
"""


import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from hsdt.api import auth, schemas
from hsdt.api.public_page import public_html
from hsdt.api.remote_routes import SUMMARIES as REMOTE_SUMMARIES
from hsdt.api.remote_routes import add_remote_routes
from hsdt.db.models import (
    ArchiveEntry,
    Bundle,
    Correction,
    Document,
    DocumentRevision,
    DocumentState,
    LockWindow,
    User,
)
from hsdt.db.scope import Action, StepFacts, Target, visible_documents
from hsdt.domain.errors import BundleRejected, HsdtError, SigningRefused
from hsdt.domain.plans import Role as PlanRole
from hsdt.service import certificates, corrections, progress, records, signatures, windows
from hsdt.service.context import ServiceContext
from hsdt.service.errors import NotFound, Refused
from hsdt.service.guard import require, require_target, transaction

API = "/api/v1"
NOT_FOUND_MESSAGE = ("Không tìm thấy: đối tượng này không tồn tại hoặc nằm ngoài phạm vi được giao cho bạn. "
                     "Hãy kiểm tra lại mã hoặc liên hệ quản trị viên của trường.")
_bearer = HTTPBearer(auto_error=False, description="Mã phiên từ POST /api/v1/auth/token")
MAX_ID = 2**31 - 1
"""Largest key the databases hold (PostgreSQL INTEGER): a bigger id is a 422, not a 500."""
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
OptId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": schemas.Problem} for s in (400, 401, 403, 404, 409, 422, 423)}


def _status(exc: HsdtError) -> int:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    if isinstance(exc, BundleRejected | SigningRefused):
        return 422
    return 400


def _problem_json(p: Any) -> dict[str, str]:
    """One located problem (:class:`hsdt.domain.errors.Problem` of a rejected bundle)."""
    out = {"where": str(getattr(p, "where", None) or getattr(p, "field", "")), "message": str(p.message)}
    out.update({k: str(v) for k in ("student_code", "student_name", "subject") if (v := getattr(p, k, None))})
    return out


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None  # not JSON: the route answers that


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _problem(exc: HsdtError) -> JSONResponse:
    problems = [_problem_json(p) for p in getattr(exc, "problems", []) or []]
    headers = {}
    unlocks_at = getattr(exc, "unlocks_at", None)
    if unlocks_at is not None:
        headers["Retry-After"] = str(max(1, int((unlocks_at - datetime.now(UTC)).total_seconds())))
    if _status(exc) == 401:
        headers["WWW-Authenticate"] = "Bearer"
    code, message = exc.code, exc.message or str(exc)
    if _status(exc) == 404:
        # "Not there" and "not yours to know about" must read the same, or the wording would
        # tell one school which of another school's records exist.
        code, message = "not_found", NOT_FOUND_MESSAGE
    return JSONResponse({"error": code, "message": message, "problems": problems},
                        status_code=_status(exc), headers=headers)


def create_app(ctx: ServiceContext) -> FastAPI:
    app = FastAPI(
        title="HSĐT — Hồ sơ điện tử của nhà trường",
        version="1.0",
        description="Nhập và khoá dữ liệu, tạo học bạ PDF/A, ký số theo trình tự, lưu trữ bất biến, "
                    "xác minh. Mọi quyền được giới hạn theo đơn vị (Thông tư 22/2021, Điều 4–14).",
        responses=ERRORS,
    )
    app.state.ctx = ctx

    @app.exception_handler(HsdtError)
    def _hsdt_error(request: Request, exc: HsdtError) -> JSONResponse:
        return _problem(exc)

    @app.middleware("http")
    async def _refuse_nul(request: Request, call_next: Any) -> Any:
        """PostgreSQL text cannot hold U+0000 (a 500 there, stored on SQLite): refused at the door,
        the same on every database, in the path, the query and JSON bodies."""
        nul = "\x00" in request.url.path or b"%00" in request.scope.get("query_string", b"")
        if not nul and request.method in ("POST", "PUT", "PATCH") and not request.headers.get(
                "content-type", "").startswith("application/pdf"):
            body = await request.body()
            nul = b"\\u0000" in body and _has_nul(_json_or_none(body))
        if nul:
            return _problem(Refused("Dữ liệu gửi lên chứa ký tự NUL (U+0000), không được chấp nhận.",
                                    code="nul_character"))
        return await call_next(request)

    def db() -> Iterator[Session]:
        with transaction(ctx.sessions) as session:
            yield session

    def client_ip(request: Request) -> str | None:
        return request.client.host if request.client else None

    def current_user(session: Annotated[Session, Depends(db, scope="function")],
                     creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> User:
        if creds is None or creds.scheme.lower() != "bearer":
            raise auth.AuthError("Cần đăng nhập: gửi mã phiên trong tiêu đề Authorization: Bearer …",
                                 code="token_invalid", status=401)
        return auth.authenticate(session, creds.credentials, now=ctx.clock())

    def current_user_id(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> int:
        """The caller, authenticated in a transaction of its own that is over before the
        route runs (for routes that run several transactions: remote signing batches)."""
        with transaction(ctx.sessions) as session:
            return current_user(session, creds).id

    add_remote_routes(app, ctx, current_user_id, client_ip)

    # scope="function": the commit happens before the answer is sent — a client never hears
    # "signed" about something that is not yet in the database.
    DB = Annotated[Session, Depends(db, scope="function")]
    Me = Annotated[User, Depends(current_user)]
    IP = Annotated[str | None, Depends(client_ip)]

    # -- sign-in ---------------------------------------------------------------------------
    @app.post(f"{API}/auth/token", response_model=schemas.TokenOut, tags=["Đăng nhập"])
    def sign_in(body: schemas.Credentials, session: DB, ip: IP) -> schemas.TokenOut:
        issued = auth.sign_in(session, body.username, body.password, ip=ip, now=ctx.clock())
        user = session.get(User, issued.user_id)
        assert user is not None
        return schemas.TokenOut(access_token=issued.token, expires_at=issued.expires_at,
                                user=user.username, full_name=user.full_name)

    @app.post(f"{API}/auth/logout", status_code=204, tags=["Đăng nhập"])
    def sign_out(session: DB, me: Me, ip: IP,
                 creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Response:
        if creds is not None:
            auth.sign_out(session, creds.credentials, ip=ip, now=ctx.clock())
        return Response(status_code=204)

    # -- bundles and records ---------------------------------------------------------------
    @app.post(f"{API}/bundles", response_model=schemas.BundleOut, status_code=201, tags=["Dữ liệu"])
    def import_bundle(body: Annotated[dict[str, Any], Body(description="Gói dữ liệu học kỳ (JSON)")],
                      session: DB, me: Me, ip: IP) -> Any:
        row = records.import_bundle(session, ctx, me, json.dumps(body, ensure_ascii=False).encode(), ip=ip)
        return records.bundle_summary(row)

    @app.post(f"{API}/bundles/{{bundle_id}}/lock", response_model=schemas.BundleOut, tags=["Dữ liệu"])
    def lock_bundle(bundle_id: Id, session: DB, me: Me, ip: IP) -> Any:
        records.lock(session, ctx, me, bundle_id, ip=ip)
        row = session.get(Bundle, bundle_id)
        assert row is not None
        return records.bundle_summary(row)

    @app.post(f"{API}/bundles/{{bundle_id}}/render", response_model=list[schemas.RevisionOut],
              status_code=202, tags=["Hồ sơ"])
    def render_bundle(bundle_id: Id, session: DB, me: Me, ip: IP) -> Any:
        row = records.get_bundle(session, me, bundle_id, Action.LOCK_BUNDLE, ip)
        made = records.create_documents(session, me, row, ip=ip)
        assert ctx.dispatcher is not None
        ctx.dispatcher.send(session, "render", [r.id for r in made])
        return [_revision_out(r) for r in made]

    @app.post(f"{API}/bundles/{{bundle_id}}/seal", response_model=list[schemas.RevisionOut],
              status_code=202, tags=["Ký số"])
    def seal_bundle(bundle_id: Id, session: DB, me: Me, ip: IP) -> Any:
        """Con dấu của trường (khoá trên HSM của máy chủ) chứng nhận mọi hồ sơ của gói."""
        row = records.get_bundle(session, me, bundle_id, Action.READ_RECORD, ip)
        # Who may set the seal going does not depend on whether anything waits for it: the
        # school-seal field of this bundle's school, decided before looking at the records.
        require_target(session, me, Action.SIGN_FIELD, Target(
            row.school_id, row.class_id, StepFacts(PlanRole.SCHOOL_SEAL, None, None),
            label=f"seal:bundle:{row.id}"), obj=row, ip=ip)
        revs = session.scalars(select(DocumentRevision).where(
            DocumentRevision.bundle_id == row.id,
            DocumentRevision.state.in_((DocumentState.PENDING, DocumentState.RENDERED)))).all()
        assert ctx.dispatcher is not None
        ctx.dispatcher.send(session, "certify", [r.id for r in revs])
        return [_revision_out(r) for r in revs]

    @app.get(f"{API}/documents", response_model=list[schemas.RevisionOut], tags=["Hồ sơ"])
    def list_documents(session: DB, me: Me, class_id: OptId = None,
                       state: DocumentState | None = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100,
                       offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> Any:
        docs = visible_documents(me)
        if class_id is not None:
            docs = docs.where(Document.class_id == class_id)
        out = []
        for doc in session.scalars(docs.order_by(Document.record_id).limit(limit).offset(offset)):
            rev = doc.revisions[-1] if doc.revisions else None
            if rev is not None and (state is None or rev.state is state):
                out.append(_revision_out(rev))
        return out

    @app.get(f"{API}/documents/{{record_id}}", tags=["Hồ sơ"])
    def get_document(record_id: str, session: DB, me: Me, ip: IP) -> dict[str, Any]:
        doc = _document(session, me, record_id, ip)
        return {"record_id": doc.record_id, "student_code": doc.student_code,
                "revisions": [{**_revision_out(r).model_dump(), "steps": [
                    {"step_id": s.id, "field_name": s.field_name, "stage": s.stage, "role": s.role.value,
                     "state": s.state.value, "signed_at": s.signed_at, "reject_reason": s.reject_reason}
                    for s in r.steps]} for r in doc.revisions]}

    # -- signatures ------------------------------------------------------------------------
    @app.get(f"{API}/signatures/pending", response_model=list[signatures.PendingSignature], tags=["Ký số"])
    def pending(session: DB, me: Me) -> Any:
        return signatures.pending(session, me)

    @app.post(f"{API}/signatures/{{step_id}}/prepare", response_model=schemas.PreparedOut, tags=["Ký số"])
    def prepare(step_id: Id, body: schemas.PrepareIn, session: DB, me: Me, ip: IP) -> Any:
        cert = signatures.b64decode(body.certificate, "Chứng thư")
        chain = [signatures.b64decode(c, "Chứng thư trung gian") for c in body.chain]
        return signatures.prepare(session, ctx, me, step_id, cert, chain, ip=ip)

    @app.post(f"{API}/signatures/preparations/{{preparation_id}}/complete",
              response_model=schemas.RevisionOut, tags=["Ký số"])
    def complete(preparation_id: str, body: schemas.CompleteIn, session: DB, me: Me, ip: IP) -> Any:
        value = signatures.b64decode(body.signature_value, "Giá trị chữ ký")
        rev = signatures.complete(session, ctx, me, preparation_id, value, ip=ip)
        if rev.state is DocumentState.SIGNED:
            assert ctx.dispatcher is not None
            ctx.dispatcher.send(session, "finish", [rev.id])
        return _revision_out(rev)

    @app.post(f"{API}/signatures/{{step_id}}/reject", response_model=schemas.RevisionOut, tags=["Ký số"])
    def reject(step_id: Id, body: schemas.RejectIn, session: DB, me: Me, ip: IP) -> Any:
        return _revision_out(signatures.reject(session, ctx, me, step_id, body.reason, ip=ip))

    # -- corrections -----------------------------------------------------------------------
    @app.post(f"{API}/corrections", response_model=schemas.CorrectionOut, status_code=201,
              tags=["Điều chỉnh"])
    def request_correction(body: schemas.CorrectionIn, session: DB, me: Me, ip: IP) -> Any:
        return _correction_out(corrections.request(session, ctx, me, body.record_id, body.reason, ip=ip))

    @app.post(f"{API}/corrections/{{correction_id}}/approve", response_model=schemas.CorrectionOut,
              tags=["Điều chỉnh"])
    def approve_correction(correction_id: Id, body: schemas.ApproveIn, session: DB, me: Me, ip: IP) -> Any:
        specs = [corrections.WitnessSpec(w.username, w.capacity) for w in body.witnesses]
        return _correction_out(corrections.approve(session, ctx, me, correction_id, specs, body.note, ip=ip))

    @app.post(f"{API}/corrections/{{correction_id}}/refuse", response_model=schemas.CorrectionOut,
              tags=["Điều chỉnh"])
    def refuse_correction(correction_id: Id, body: schemas.RefuseIn, session: DB, me: Me, ip: IP) -> Any:
        return _correction_out(corrections.refuse_correction(session, ctx, me, correction_id, body.note,
                                                             ip=ip))

    @app.post(f"{API}/corrections/{{correction_id}}/apply", response_model=schemas.CorrectionOut,
              tags=["Điều chỉnh"])
    def apply_correction(correction_id: Id,
                         body: Annotated[dict[str, Any], Body(description="Gói dữ liệu đã sửa (JSON)")],
                         session: DB, me: Me, ip: IP) -> Any:
        made = corrections.apply(session, ctx, me, correction_id,
                                 json.dumps(body, ensure_ascii=False).encode(), ip=ip)
        assert ctx.dispatcher is not None
        ctx.dispatcher.send(session, "render", [r.id for r in made])
        row = session.get(Correction, correction_id)
        assert row is not None
        return _correction_out(row, made)

    # -- windows and progress --------------------------------------------------------------
    @app.post(f"{API}/windows", response_model=schemas.WindowOut, status_code=201, tags=["Khung thời gian"])
    def open_window(body: schemas.WindowIn, session: DB, me: Me, ip: IP) -> Any:
        return _window_out(windows.open_window(
            session, ctx, me, kind=body.kind, school_year=body.school_year, term=body.term,
            opens_at=body.opens_at, closes_at=body.closes_at, unit_id=body.unit_id, class_id=body.class_id,
            reason=body.reason, ip=ip))

    @app.post(f"{API}/windows/{{window_id}}/close", response_model=schemas.WindowOut,
              tags=["Khung thời gian"])
    def close_window(window_id: Id, session: DB, me: Me, ip: IP) -> Any:
        return _window_out(windows.close_window(session, ctx, me, window_id, ip=ip))

    @app.get(f"{API}/progress", tags=["Tiến độ"])
    def get_progress(session: DB, me: Me, ip: IP, unit_id: OptId = None,
                     class_id: OptId = None) -> dict[str, Any]:
        if (unit_id is None) == (class_id is None):
            raise Refused("Cần đúng một trong hai: unit_id hoặc class_id.", code="scope_required")
        return progress.progress(session, me, unit_id=unit_id, class_id=class_id, ip=ip)

    # -- archive and verification ----------------------------------------------------------
    @app.get(f"{API}/archive/records", response_model=list[schemas.ArchiveEntryOut], tags=["Lưu trữ"])
    def search_archive(session: DB, me: Me, student_code: str | None = None, school_code: str | None = None,
                       school_year: str | None = None, kind: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Any:
        visible = visible_documents(me).with_only_columns(Document.record_id)
        stmt = select(ArchiveEntry).where(ArchiveEntry.record_id.in_(visible))
        filters = ((ArchiveEntry.student_code, student_code), (ArchiveEntry.school_code, school_code),
                   (ArchiveEntry.school_year, school_year), (ArchiveEntry.kind, kind))
        for column, value in filters:
            if value is not None:
                stmt = stmt.where(column == value)
        return [_entry_out(e) for e in session.scalars(stmt.order_by(ArchiveEntry.log_index).limit(limit))]

    @app.get(f"{API}/archive/records/{{sha256}}/pdf", tags=["Lưu trữ"],
             responses={200: {"content": {"application/pdf": {}}}})
    def download_pdf(sha256: str, session: DB, me: Me, ip: IP) -> Response:
        entry = _archived(session, me, sha256, ip)
        with ctx.archive_for(session, None) as archive:
            pdf = archive.get(_index_entry(archive, entry.sha256))
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{entry.record_id}.pdf"'})

    @app.get(f"{API}/archive/records/{{sha256}}/report", tags=["Lưu trữ"])
    def download_report(sha256: str, session: DB, me: Me, ip: IP) -> dict[str, Any]:
        entry = _archived(session, me, sha256, ip)
        revision = session.get(DocumentRevision, entry.document_revision_id or 0)
        with ctx.archive_for(session, revision.document.school if revision else None) as archive:
            return archive.report(_index_entry(archive, entry.sha256)).to_json()

    @app.post(f"{API}/verify", tags=["Xác minh"],
              openapi_extra={"requestBody": {"required": True, "content": {"application/pdf": {
                  "schema": {"type": "string", "format": "binary"}}}}})
    async def verify_upload(request: Request, me: Me) -> dict[str, Any]:
        pdf = await request.body()
        if not pdf.startswith(b"%PDF-"):
            raise Refused("Tệp gửi lên không phải PDF.", code="not_pdf")
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_verify, pdf)

    def _verify(pdf: bytes) -> dict[str, Any]:
        from hsdt.signing.verification import Verifier

        with ctx.sessions() as session, ctx.archive_for(session, None) as archive:
            verifier = Verifier(ctx.trust_roots, archive.verifier.bindings, online=False)
            return verifier.verify(pdf).to_json()

    # -- certificates (Điều 10: one person's key, bound by the unit's administrator) --------
    @app.post(f"{API}/users/{{user_id}}/certificates", response_model=certificates.CertificateView,
              status_code=201, tags=["Tài khoản"])
    def bind_certificate(user_id: Id, body: schemas.CertificateIn, session: DB, me: Me, ip: IP) -> Any:
        der = signatures.b64decode(body.certificate, "Chứng thư")
        return certificates.view(certificates.bind(session, me, user_id, der, ctx.clock(), ip=ip))

    @app.post(f"{API}/certificates/{{fingerprint}}/withdraw", response_model=certificates.CertificateView,
              tags=["Tài khoản"])
    def withdraw_certificate(fingerprint: Annotated[str, Path(pattern="^[0-9a-fA-F]{64}$")],
                             body: schemas.WithdrawIn, session: DB, me: Me, ip: IP) -> Any:
        row = certificates.withdraw(session, me, fingerprint, body.reason, ctx.clock(), ip=ip)
        return certificates.view(row)

    # -- the public page behind a record's QR code (no sign-in) ----------------------------
    @app.get("/v/{record_id}", response_class=HTMLResponse, tags=["Công khai"])
    def public_page(record_id: str) -> HTMLResponse:
        answer = _public(record_id)
        return HTMLResponse(public_html(record_id, answer),
                            status_code=404 if answer.status == "not_found" else 200)

    @app.get(f"{API}/public/records/{{record_id}}", tags=["Công khai"])
    def public_json(record_id: str) -> JSONResponse:
        answer = _public(record_id).to_json()
        return JSONResponse(answer, status_code=404 if answer["status"] == "not_found" else 200)

    @app.get(f"{API}/public/log", tags=["Công khai"])
    def public_log() -> dict[str, Any]:
        with ctx.sessions() as session, ctx.archive_for(session, None) as archive:
            return archive.published_log()

    @app.get(f"{API}/public/log/consistency", tags=["Công khai"])
    def public_log_consistency(old_size: Annotated[int, Query(ge=0, le=2**62)]) -> dict[str, Any]:
        with ctx.sessions() as session, ctx.archive_for(session, None) as archive:
            return archive.consistency(old_size)

    def _public(record_id: str) -> Any:
        with ctx.sessions() as session, ctx.archive_for(session, None) as archive:
            return archive.public(record_id=record_id)

    @app.get("/healthz", tags=["Công khai"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # -- helpers ---------------------------------------------------------------------------
    def _document(session: Session, me: User, record_id: str, ip: str | None) -> Document:
        doc = session.scalars(select(Document).where(Document.record_id == record_id)).first()
        if doc is None:
            raise NotFound(f"Không có hồ sơ {record_id}.")
        require(session, me, Action.READ_RECORD, doc, ip=ip)
        return doc

    def _archived(session: Session, me: User, sha256: str, ip: str | None) -> ArchiveEntry:
        entry = session.get(ArchiveEntry, sha256.lower())
        if entry is None:
            raise NotFound("Không có bản lưu trữ này.")
        _document(session, me, entry.record_id, ip)
        return entry

    for route in app.routes:  # Vietnamese summaries in the published OpenAPI (docs/openapi.json)
        if isinstance(route, APIRoute) and route.summary is None:
            route.summary = SUMMARIES.get(route.name) or REMOTE_SUMMARIES.get(route.name)
    return app


SUMMARIES = {
    "sign_in": "Đăng nhập, nhận mã phiên",
    "sign_out": "Đăng xuất (thu hồi mã phiên)",
    "import_bundle": "Nhập gói dữ liệu học kỳ của một lớp",
    "lock_bundle": "Khoá gói dữ liệu (Điều 14)",
    "render_bundle": "Tạo học bạ PDF/A cho cả lớp từ gói đã khoá",
    "seal_bundle": "Đóng dấu của trường lên các hồ sơ của gói",
    "list_documents": "Danh sách hồ sơ trong phạm vi được xem",
    "get_document": "Một hồ sơ: các phiên bản và các ô chữ ký",
    "pending": "Các ô chữ ký đang chờ tôi ký",
    "prepare": "Chuẩn bị ký một ô: máy chủ kiểm tra và trả dữ liệu cần ký",
    "complete": "Gửi giá trị chữ ký để hoàn tất ô ký",
    "reject": "Từ chối ký, nêu lý do",
    "request_correction": "Đề nghị điều chỉnh dữ liệu đã khoá (Điều 11.4)",
    "approve_correction": "Phê duyệt điều chỉnh, nêu người chứng kiến",
    "refuse_correction": "Không phê duyệt đề nghị điều chỉnh",
    "apply_correction": "Áp dụng dữ liệu đã điều chỉnh",
    "open_window": "Mở khung thời gian nhập dữ liệu hoặc ký (Điều 13)",
    "close_window": "Đóng khung thời gian",
    "get_progress": "Tiến độ ký của một lớp hoặc đơn vị",
    "search_archive": "Tìm hồ sơ trong kho lưu trữ",
    "download_pdf": "Tải bản PDF đã lưu trữ",
    "download_report": "Báo cáo xác minh của bản lưu trữ",
    "verify_upload": "Xác minh một tệp PDF gửi lên",
    "public_page": "Trang xác minh công khai (mở từ mã QR)",
    "public_json": "Kết quả xác minh công khai (JSON)",
    "public_log": "Nhật ký minh bạch: khoá công khai và các đầu cây đã ký (để lưu giữ riêng)",
    "public_log_consistency": "Chứng minh nhất quán từ một đầu cây đã lưu giữ đến nhật ký hôm nay",
    "health": "Kiểm tra dịch vụ đang chạy",
    "bind_certificate": "Đăng ký chứng thư số cho một tài khoản (quản trị viên đơn vị)",
    "withdraw_certificate": "Thu hồi chứng thư số đã đăng ký, nêu lý do",
}
"""Route name → Vietnamese summary; a route without one fails tests/api/test_openapi.py."""


def _index_entry(archive: Any, sha256: str) -> Any:
    entry = archive.index.by_sha(sha256)
    if entry is None:
        raise NotFound("Bản lưu trữ không có trong chỉ mục của kho.")
    return entry


def _revision_out(rev: DocumentRevision) -> schemas.RevisionOut:
    return schemas.RevisionOut(revision_id=rev.id, record_id=rev.document.record_id, revision=rev.revision,
                               state=rev.state.value, stage=rev.stage, pdf_sha256=rev.pdf_sha256,
                               supersedes_id=rev.supersedes_id)


def _correction_out(row: Correction, made: list[DocumentRevision] | None = None) -> schemas.CorrectionOut:
    return schemas.CorrectionOut(id=row.id, state=row.state.value, reason=row.reason,
                                 record_id=row.document.record_id if row.document else None,
                                 new_bundle_id=row.new_bundle_id,
                                 revisions=[_revision_out(r) for r in made or []])


def _window_out(row: LockWindow) -> schemas.WindowOut:
    return schemas.WindowOut(id=row.id, kind=row.kind.value, school_year=row.school_year, term=row.term.value,
                             opens_at=row.opens_at, closes_at=row.closes_at, unit_id=row.org_unit_id,
                             class_id=row.class_id)


def _entry_out(e: ArchiveEntry) -> schemas.ArchiveEntryOut:
    return schemas.ArchiveEntryOut(**{k: getattr(e, k) for k in schemas.ArchiveEntryOut.model_fields})
