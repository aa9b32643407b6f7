"""Remote signing over HTTP: sign a batch through CSC, send one to the phone, hear callbacks.

Kept beside :mod:`hsdt.api.app` because these routes run *several* transactions each (one
per record, so that one record failing does not undo the others) and call providers in
between; the request's own session is finished before the batch starts.
"""


from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, FastAPI, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from hsdt.api import schemas
from hsdt.db.models import User
from hsdt.db.scope import Action
from hsdt.service import remote_signing
from hsdt.service.certificates import home_unit
from hsdt.service.context import ServiceContext
from hsdt.service.guard import require, transaction

API = "/api/v1"
TAGS: list[str | Enum] = ["Ký từ xa"]


def _batch_out(result: remote_signing.BatchResult) -> schemas.RemoteBatchOut:
    return schemas.RemoteBatchOut(
        provider=result.provider, signed=result.count("signed"), refused=result.count("refused"),
        failed=result.count("failed"), pending=result.count("pending"), authorizations=result.authorizations,
        approval_id=result.approval_id, approval_state=result.approval_state, expires_at=result.expires_at,
        items=result.items)


def add_remote_routes(router: FastAPI, ctx: ServiceContext, me_id: Callable[..., int],
                      client_ip: Callable[..., str | None]) -> None:
    MeId = Annotated[int, Depends(me_id)]
    IP = Annotated[str | None, Depends(client_ip)]

    @router.get(f"{API}/remote/providers", tags=TAGS, response_model=list[schemas.ProviderOut])
    def remote_providers(me: MeId) -> Any:
        return [schemas.ProviderOut(name=n, kind=c.kind, display_name=c.display_name,
                                    needs_password=c.needs_password)
                for n, c in sorted(ctx.remote.providers.items())]

    @router.post(f"{API}/signatures/remote/csc", tags=TAGS, response_model=schemas.RemoteBatchOut)
    def remote_sign_csc(body: schemas.CscSignIn, me: MeId, ip: IP) -> Any:
        return _batch_out(remote_signing.sign_with_csc(
            ctx, me, body.provider, pin=body.pin, otp=body.otp, password=body.password,
            step_ids=body.step_ids, class_name=body.class_name, credential_id=body.credential_id, ip=ip))

    @router.post(f"{API}/signatures/remote/approvals", tags=TAGS, response_model=schemas.RemoteBatchOut,
                 status_code=202)
    def remote_submit_approval(body: schemas.RemoteBatchIn, me: MeId, ip: IP) -> Any:
        return _batch_out(remote_signing.submit_for_approval(
            ctx, me, body.provider, step_ids=body.step_ids, class_name=body.class_name, ip=ip))

    @router.get(f"{API}/signatures/remote/approvals/{{approval_id}}", tags=TAGS,
                response_model=schemas.RemoteBatchOut)
    def remote_approval(approval_id: Annotated[str, Path(max_length=32)], me: MeId) -> Any:
        return _batch_out(remote_signing.approval_view(ctx, me, approval_id))

    @router.post(f"{API}/remote/callback/{{provider}}", tags=["Công khai"], status_code=204)
    async def remote_callback(provider: Annotated[str, Path(max_length=64)], request: Request,
                              background: BackgroundTasks, ip: IP) -> Response:
        body = await request.body()
        approval_id = await run_in_threadpool(remote_signing.accept_callback, ctx, provider,
                                              dict(request.headers), body, ip)
        # Answered at once; the batch is completed after the answer (or by the next poll,
        # should this process stop first: the batch is due now in the database).
        background.add_task(remote_signing.poll_approval, ctx, approval_id)
        return Response(status_code=204)

    @router.put(f"{API}/users/{{user_id}}/remote-accounts/{{provider}}", tags=TAGS, status_code=204)
    def link_remote_account(user_id: Annotated[int, Path(ge=1, le=2**53)],
                            provider: Annotated[str, Path(max_length=64)],
                            body: schemas.RemoteAccountIn, me: MeId, ip: IP) -> Response:
        with transaction(ctx.sessions) as session:
            admin = session.get(User, me)
            assert admin is not None
            require(session, admin, Action.MANAGE_USERS, home_unit(session, user_id), ip=ip)
        remote_signing.link_account(ctx, user_id, provider, body.account, body.credential_id)
        return Response(status_code=204)



SUMMARIES = {
    "remote_providers": "Các nhà cung cấp ký từ xa đã cấu hình",
    "remote_sign_csc": "Ký cả lô qua nhà cung cấp CSC (một lần nhập PIN/OTP)",
    "remote_submit_approval": "Gửi cả lô sang điện thoại để xác nhận ký",
    "remote_approval": "Trạng thái một lô đang chờ xác nhận trên điện thoại",
    "remote_callback": "Nhà cung cấp báo kết quả xác nhận (gọi lại, có chữ ký HMAC)",
    "link_remote_account": "Liên kết tài khoản ký từ xa của một người dùng",
}
