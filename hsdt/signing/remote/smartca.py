"""Adapter for the SmartCA-style asynchronous hash-signing API.

Wire shape: every request carries the service provider's ``sp_id``/``sp_password``;
``credentials/get_certificate`` gives the user's certificate; ``signatures/sign`` submits
hashes (hex SHA-256) under our ``transaction_id``; ``signatures/sign/{id}/status`` reports
``pending | approved | rejected | expired`` and, once approved, one signature per doc id.
Callbacks carry ``X-Callback-Timestamp`` and ``X-Callback-Signature: sha256=<HMAC>``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from hsdt.signing.remote.approval import (
    ApprovalState,
    ApprovalStatus,
    CallbackEvent,
    CallbackRefused,
    HashToSign,
    Submission,
    verify_hmac_callback,
)
from hsdt.signing.remote.common import RemoteCertificate, RemoteSigningError, Retry, load_certificates, send


class SmartCaProvider:
    """One configured SmartCA-style provider (see :mod:`hsdt.signing.remote.providers`)."""

    def __init__(self, name: str, base_url: str, sp_id: str, sp_password: str, callback_secret: bytes, *,
                 timeout_s: float = 30.0, retry: Retry | None = None) -> None:
        self.name = name
        self._sp = {"sp_id": sp_id, "sp_password": sp_password}
        self._secret = callback_secret
        self.retry = retry or Retry()
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/", timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = send(self.name, lambda: self._http.post(path, json={**self._sp, **body}), self.retry)
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400 or not isinstance(data, dict) or data.get("status_code", 200) >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            raise RemoteSigningError(
                f"Nhà cung cấp «{self.name}» từ chối yêu cầu: {message or f'HTTP {response.status_code}'}.",
                code={401: "provider_auth", 404: "not_found", 409: "conflict"}.get(response.status_code,
                                                                                    "remote_error"),
                status=response.status_code, detail=response.text[:300])
        payload = data.get("data")
        return payload if isinstance(payload, dict) else {}

    def certificate(self, account: str) -> RemoteCertificate:
        data = self._post("v1/credentials/get_certificate", {"user_id": account})
        certs = [c for c in data.get("user_certificates") or [] if isinstance(c, dict)]
        active = [c for c in certs if c.get("cert_status") == "active"]
        if not active:
            raise RemoteSigningError(
                f"Tài khoản {account} không có chứng thư số đang hoạt động tại «{self.name}».",
                code="no_certificate")
        item = active[0]
        chain_data = item.get("chain_data") or {}
        raw = [item.get("cert_data")] + [chain_data.get(k) for k in ("ca_cert", "root_cert")
                                         if chain_data.get(k)]
        certs_loaded = load_certificates(raw, self.name)
        return RemoteCertificate(str(item.get("serial_number", "")), certs_loaded[0], tuple(certs_loaded[1:]))

    def submit(self, account: str, certificate: RemoteCertificate, transaction_id: str, description: str,
               items: Sequence[HashToSign]) -> Submission:
        data = self._post("v1/signatures/sign", {
            "user_id": account, "serial_number": certificate.credential_id,
            "transaction_id": transaction_id, "transaction_desc": description[:500],
            "time_stamp": datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
            "sign_files": [{"doc_id": i.doc_id, "file_type": "pdf", "data_to_be_signed": i.digest.hex(),
                            "sign_type": "hash"} for i in items]})
        expires = data.get("expires_at")
        return Submission(transaction_id, str(data.get("tran_code", "")),
                          datetime.fromisoformat(expires) if isinstance(expires, str) else None)

    def status(self, transaction_id: str) -> ApprovalStatus:
        data = self._post(f"v1/signatures/sign/{transaction_id}/status", {})
        try:
            state = ApprovalState(str(data.get("status")))
        except ValueError:
            raise RemoteSigningError(f"«{self.name}» báo trạng thái lạ: {data.get('status')!r}.",
                                     code="bad_answer", retryable=True) from None
        signatures = None
        if state is ApprovalState.APPROVED:
            try:
                signatures = {str(s["doc_id"]): base64.b64decode(s["signature_value"], validate=True)
                              for s in data.get("signatures") or []}
            except (KeyError, TypeError, ValueError):
                raise RemoteSigningError(f"«{self.name}» trả về chữ ký sai định dạng.", code="bad_answer",
                                         retryable=True) from None
        reason = data.get("reason")
        return ApprovalStatus(state, str(reason) if reason else None, signatures)

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: datetime) -> CallbackEvent:
        data = verify_hmac_callback(self._secret, headers, body, now)
        try:
            return CallbackEvent(str(data["event_id"]), str(data["transaction_id"]),
                                 ApprovalState(str(data["status"])))
        except (KeyError, ValueError):
            raise CallbackRefused("Thông báo gọi lại thiếu mã sự kiện, mã giao dịch hoặc trạng thái.",
                                  code="callback_malformed") from None
