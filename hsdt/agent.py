"""``hsdt agent``: the teacher's signing agent — a class in one sitting, one PIN.

Runs on the teacher's PC beside the USB token. It signs in to the API, lists the fields
waiting for this teacher, shows what will be signed (student, class, field), asks for the
PIN once, and then for each record, one after the other: ``prepare`` (the server checks
everything and returns the bytes to sign), sign on the token, ``complete``. The private key
never leaves the token; the server never sees the PIN.

Records are signed one at a time because each signature is an incremental update of that
record: a second field of the same record can only be prepared on the bytes the first one
produced. After a pass the agent asks again, since signing may open the teacher's next
stage (a homeroom teacher's field opens once every subject is signed).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from asn1crypto import pem, x509

from hsdt.domain.errors import HsdtError, SigningRefused
from hsdt.signing.keys import SigningKey, open_pkcs11_key, open_software_key


class AgentError(HsdtError):
    code = "agent_error"


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Certificates from a PEM (one or more) or DER file."""
    data = path.read_bytes()
    if pem.detect(data):
        return [x509.Certificate.load(der) for _, _, der in pem.unarmor(data, multiple=True)]
    return [x509.Certificate.load(data)]


def token_certificate(lib_path: str, token_label: str, key_label: str) -> x509.Certificate:
    """The certificate stored on the token beside the key (read without logging in)."""
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    token = pkcs11.lib(lib_path).get_token(token_label=token_label)
    with token.open() as session:
        wanted = {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: key_label}
        for obj in session.get_objects(wanted):
            return x509.Certificate.load(bytes(obj[Attribute.VALUE]))
    raise SigningRefused(f"Token «{token_label}» không có chứng thư nhãn «{key_label}».", code="cert_missing")


def open_token_key(lib_path: str, token_label: str, key_label: str, pin: str,
                   chain: list[x509.Certificate]) -> SigningKey:
    cert = token_certificate(lib_path, token_label, key_label)
    return open_pkcs11_key(lib_path, token_label, pin, key_label, cert, chain)


def open_file_key(p12_path: Path, passphrase: str) -> SigningKey:
    return open_software_key(p12_path, passphrase.encode())


@dataclass
class AgentResult:
    signed: list[str] = field(default_factory=list)  # "record_id/field"
    failed: dict[str, str] = field(default_factory=dict)  # "record_id/field" → reason
    pin_prompts: int = 0


class ApiClient:
    """The few API calls the agent makes, with errors turned into readable messages."""

    def __init__(self, base_url: str, *, transport: httpx.BaseTransport | None = None,
                 timeout: float = 60.0) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise AgentError(f"Không kết nối được máy chủ {self.http.base_url}: {exc}",
                             code="unreachable") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
                message, code = body.get("message", resp.text), body.get("error", "http_error")
            except ValueError:
                message, code = resp.text, "http_error"
            raise AgentError(f"{message} (HTTP {resp.status_code})", code=code)
        return resp.json() if resp.content else None

    def sign_in(self, username: str, password: str) -> str:
        token = self._call("POST", "/api/v1/auth/token", json={"username": username, "password": password})
        self.http.headers["Authorization"] = f"Bearer {token['access_token']}"
        return str(token["full_name"])

    def pending(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/signatures/pending"))

    def providers(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/remote/providers"))

    def remote_csc(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/signatures/remote/csc", json=body))

    def remote_submit(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/signatures/remote/approvals", json=body))

    def remote_batch(self, approval_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/signatures/remote/approvals/{approval_id}"))

    def prepare(self, step_id: int, cert: x509.Certificate, chain: list[x509.Certificate]) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/v1/signatures/{step_id}/prepare", json={
            "certificate": base64.b64encode(cert.dump()).decode(),
            "chain": [base64.b64encode(c.dump()).decode() for c in chain]}))

    def complete(self, preparation_id: str, value: bytes) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/v1/signatures/preparations/{preparation_id}/complete",
                               json={"signature_value": base64.b64encode(value).decode()}))


def provider_named(client: ApiClient, name: str) -> dict[str, Any]:
    """The provider the school configured under ``name``, or a refusal listing the others."""
    providers = client.providers()
    for p in providers:
        if p["name"] == name:
            return p
    known = ", ".join(p["name"] for p in providers) or "máy chủ chưa cấu hình nhà cung cấp nào"
    raise AgentError(f"Không có nhà cung cấp ký từ xa «{name}» (có: {known}).", code="unknown_provider")


def sign_remote_csc(client: ApiClient, provider: dict[str, Any], step_ids: list[int], *,
                    ask: Callable[[str, str], str]) -> dict[str, Any]:
    """The whole batch through a CSC provider: one PIN (and OTP when the key asks for one)."""
    body: dict[str, Any] = {"provider": provider["name"], "step_ids": step_ids}
    if provider.get("needs_password"):
        body["password"] = ask(f"Mật khẩu tài khoản {provider['display_name']}",
                               "mật khẩu tài khoản ký từ xa")
    body["pin"] = ask(f"Mã PIN ký số {provider['display_name']}", "mã PIN")
    try:
        return client.remote_csc(body)
    except AgentError as exc:
        if exc.code != "invalid_otp" or "otp" in body:
            raise
    body["otp"] = ask("Mã OTP", "mã OTP")
    return client.remote_csc(body)


def sign_remote_approval(client: ApiClient, provider: dict[str, Any], step_ids: list[int], *,
                         on_sent: Callable[[dict[str, Any]], None], poll_s: float = 2.0,
                         timeout_s: float = 1800.0, sleep: Callable[[float], None] = time.sleep
                         ) -> dict[str, Any]:
    """Send the batch to the teacher's phone and wait (asking the server) for the answer."""
    batch = client.remote_submit({"provider": provider["name"], "step_ids": step_ids})
    if batch.get("approval_state") != "pending":
        return batch
    on_sent(batch)
    deadline = time.monotonic() + timeout_s
    while batch.get("approval_state") == "pending" and time.monotonic() < deadline:
        sleep(poll_s)
        batch = client.remote_batch(str(batch["approval_id"]))
    return batch


def sign_value(key: SigningKey, to_be_signed: bytes) -> bytes:
    """Sign the DER of the signed attributes (SHA-256 with the key's own mechanism)."""
    return asyncio.run(key.signer.async_sign_raw(to_be_signed, "sha256"))


def run_agent(client: ApiClient, open_key: Callable[[], SigningKey], *,
              confirm: Callable[[list[dict[str, Any]]], bool] = lambda items: True,
              on_progress: Callable[[str, int, int], None] | None = None,
              max_passes: int = 5) -> AgentResult:
    """Sign everything waiting for the signed-in user. ``open_key`` is called once (one PIN)."""
    result = AgentResult()
    key: SigningKey | None = None
    attempted: set[int] = set()
    try:
        for _ in range(max_passes):
            items = [p for p in client.pending() if p["step_id"] not in attempted]
            if not items:
                break
            if not confirm(items):
                break
            if key is None:
                key = open_key()
                result.pin_prompts += 1
            for n, item in enumerate(items, 1):
                attempted.add(item["step_id"])
                name = f"{item['record_id']}/{item['field_name']}"
                try:
                    prepared = client.prepare(item["step_id"], key.cert, key.chain)
                    value = sign_value(key, base64.b64decode(prepared["to_be_signed"]))
                    client.complete(prepared["id"], value)
                    result.signed.append(name)
                except (AgentError, SigningRefused) as exc:
                    result.failed[name] = exc.message
                if on_progress:
                    on_progress(name, n, len(items))
    finally:
        if key is not None:
            key.close()
    return result
