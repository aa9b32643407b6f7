"""A client of the Cloud Signature Consortium API, v1 (1.0.4) and v2 (2.0).

Viettel MySign and most European QTSPs speak it. What the service uses: ``info``,
``auth/login`` (HTTP Basic) or OAuth2 client credentials, ``credentials/list`` and
``credentials/info`` (the certificate chain, checked against the user's binding like any
other certificate), ``credentials/authorize`` for a whole batch (``numSignatures`` and the
batch's hashes: one PIN/OTP entry for a class) and ``signatures/signHash`` with many hashes
per call. The two versions differ in names only (``hash``/``hashes``, ``PIN``/``authData``,
``hashAlgo``/``hashAlgorithmOID``); this module keeps the difference in one place each.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from hsdt.signing.remote.common import RemoteCertificate, RemoteSigningError, Retry, load_certificates, send

SHA256_OID = "2.16.840.1.101.3.4.2.1"
SIGN_ALGO_OID = {"rsa": "1.2.840.113549.1.1.1", "ec": "1.2.840.10045.4.3.2"}
"""signAlgo per key type: plain RSA (PKCS#1 v1.5 over the DigestInfo of ``hashAlgo``) and
ecdsa-with-SHA256; both sign a SHA-256 hash computed here."""

Version = Literal[1, 2]
AuthMode = Literal["basic", "oauth2_client"]

_ERRORS_VI = {
    "invalid_pin": "Mã PIN không đúng.",
    "invalid_otp": "Mã OTP không đúng hoặc đã hết hạn.",
    "invalid_token": "Phiên đăng nhập với nhà cung cấp không hợp lệ hoặc đã hết hạn.",
    "access_denied": "Nhà cung cấp từ chối quyền truy cập.",
}


@dataclass(frozen=True)
class CscCredential(RemoteCertificate):
    """A CSC credential: the certificate and what authorising it requires."""

    key_algorithms: tuple[str, ...] = ()
    key_length: int | None = None
    key_enabled: bool = True
    multisign: int = 1
    needs_otp: bool = False


@dataclass(frozen=True)
class Sad:
    """Signature Activation Data: one authorisation, for some hashes, until some time."""

    value: str
    expires_at: datetime
    hashes: tuple[bytes, ...]


class CscClient:
    """One provider, one user's session. Not thread-safe; open one per batch.

    ``base_url`` is the provider's service URL without the version part (the client adds
    ``/csc/v1`` or ``/csc/v2``).
    """

    def __init__(self, base_url: str, *, name: str = "CSC", version: Version = 1, auth: AuthMode = "basic",
                 timeout_s: float = 30.0, retry: Retry | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.name = name
        self.version = version
        self.auth = auth
        self.retry = retry or Retry()
        self._root = base_url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self._root}/csc/v{version}/", timeout=timeout_s,
                                  transport=transport)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CscClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the exchange ----------------------------------------------------------------------
    def _post(self, method: str, body: dict[str, Any], *, retry: bool = True,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
        hdrs = dict(headers or {})
        if self._token and "Authorization" not in hdrs:
            hdrs["Authorization"] = f"Bearer {self._token}"
        response = send(self.name, lambda: self._http.post(method, json=body, headers=hdrs),
                        self.retry if retry else Retry(attempts=1))
        return self._answer(method, response)

    def _answer(self, method: str, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = None
        if response.status_code >= 400 or not isinstance(data, dict):
            error = str(data.get("error", "")) if isinstance(data, dict) else ""
            description = str(data.get("error_description", "")) if isinstance(data, dict) else ""
            text = _ERRORS_VI.get(error) or (
                f"Nhà cung cấp «{self.name}» từ chối yêu cầu {method}: "
                f"{description or error or f'HTTP {response.status_code}'}.")
            raise RemoteSigningError(text, code=error or "remote_error", status=response.status_code,
                                     detail=description or response.text[:300])
        return data

    # -- session ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return self._post("info", {"lang": "vi-VN"} if self.version == 1 else {})

    def login(self, username: str, password: str) -> None:
        """Open the user's session: HTTP Basic ``auth/login``, or the OAuth2 token endpoint."""
        if self.auth == "basic":
            raw = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            data = self._post("auth/login", {"rememberMe": False},
                              headers={"Authorization": f"Basic {raw}"})
        else:
            response = send(self.name, lambda: self._http.post(
                f"{self._root}/oauth2/token",
                data={"grant_type": "client_credentials", "client_id": username,
                      "client_secret": password}), self.retry)
            data = self._answer("oauth2/token", response)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RemoteSigningError(f"Nhà cung cấp «{self.name}» không cấp phiên đăng nhập.",
                                     code="no_token")
        self._token = token

    # -- credentials -----------------------------------------------------------------------
    def list_credentials(self) -> list[str]:
        data = self._post("credentials/list", {"maxResults": 100})
        ids = data.get("credentialIDs")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise RemoteSigningError(f"«{self.name}»: credentials/list trả lời sai định dạng.",
                                     code="bad_answer")
        return list(ids)

    def credential(self, credential_id: str) -> CscCredential:
        data = self._post("credentials/info", {"credentialID": credential_id, "certificates": "chain",
                                               "certInfo": True, "authInfo": True})
        key = data.get("key") or {}
        cert = data.get("cert") or {}
        certs = load_certificates(list(cert.get("certificates") or []), self.name)
        if not certs:
            raise RemoteSigningError(
                f"Nhà cung cấp «{self.name}» không gửi chứng thư số của khoá {credential_id}.",
                code="no_certificate")
        if self.version == 1:
            needs_otp = str((data.get("OTP") or {}).get("presence", "false")) == "true"
        else:
            objects = (data.get("auth") or {}).get("objects") or []
            needs_otp = any(isinstance(o, dict) and o.get("id") == "OTP" for o in objects)
        return CscCredential(
            credential_id=credential_id, cert=certs[0], chain=tuple(certs[1:]),
            key_algorithms=tuple(str(a) for a in key.get("algo") or ()),
            key_length=int(key["len"]) if isinstance(key.get("len"), int) else None,
            key_enabled=key.get("status", "enabled") == "enabled",
            multisign=int(data.get("multisign") or 1), needs_otp=needs_otp)

    # -- signing ---------------------------------------------------------------------------
    def authorize(self, credential_id: str, hashes: Sequence[bytes], pin: str, otp: str | None = None,
                  *, description: str | None = None) -> Sad:
        """One authorisation for exactly these hashes (``numSignatures`` = how many)."""
        encoded = [base64.b64encode(h).decode("ascii") for h in hashes]
        body: dict[str, Any] = {"credentialID": credential_id, "numSignatures": len(hashes)}
        if self.version == 1:
            body.update(hash=encoded, PIN=pin)
            if otp:
                body["OTP"] = otp
            if description:
                body["description"] = description[:500]
        else:
            body.update(hashes=encoded, hashAlgorithmOID=SHA256_OID,
                        authData=[{"id": "PIN", "value": pin}]
                        + ([{"id": "OTP", "value": otp}] if otp else []))
            if description:
                body["description"] = description[:500]
        # Not retried blindly: a PIN sent twice may count twice towards a lock-out.
        data = self._post("credentials/authorize", body, retry=False)
        sad = data.get("SAD")
        if not isinstance(sad, str) or not sad:
            raise RemoteSigningError(f"«{self.name}» không cấp mã kích hoạt chữ ký (SAD).", code="no_sad")
        expires_in = data.get("expiresIn", 3600)
        return Sad(sad, datetime.now(UTC) + timedelta(seconds=int(expires_in)), tuple(hashes))

    def sign_hashes(self, credential_id: str, sad: Sad, hashes: Sequence[bytes], key_algorithm: str
                    ) -> list[bytes]:
        """Signatures of ``hashes`` (SHA-256 digests), in order. Not retried here: after a
        dropped connection the provider may already have used the SAD for these hashes, so
        the caller re-authorises instead (:func:`hsdt.service.remote_signing`)."""
        algo = SIGN_ALGO_OID.get(key_algorithm)
        if algo is None:
            raise RemoteSigningError(f"Loại khoá {key_algorithm} không được hỗ trợ.", code="weak_key")
        encoded = [base64.b64encode(h).decode("ascii") for h in hashes]
        if self.version == 1:
            body = {"credentialID": credential_id, "SAD": sad.value, "hash": encoded,
                    "hashAlgo": SHA256_OID, "signAlgo": algo}
        else:
            body = {"credentialID": credential_id, "SAD": sad.value, "hashes": encoded,
                    "hashAlgorithmOID": SHA256_OID, "signAlgo": algo, "operationMode": "S"}
        data = self._post("signatures/signHash", body, retry=False)
        values = data.get("signatures")
        if not isinstance(values, list) or len(values) != len(hashes):
            raise RemoteSigningError(
                f"«{self.name}» trả về {len(values) if isinstance(values, list) else 'không có'} chữ ký "
                f"cho {len(hashes)} mã băm.", code="bad_answer", retryable=True)
        try:
            return [base64.b64decode(v, validate=True) for v in values]
        except (ValueError, TypeError):
            raise RemoteSigningError(f"«{self.name}» trả về chữ ký không phải base64.",
                                     code="bad_answer", retryable=True) from None


def sad_expired(error: RemoteSigningError) -> bool:
    """The provider's way of saying the authorisation is spent or stale (re-authorise)."""
    text = (error.detail or "").lower()
    return error.code == "invalid_request" and ("sad" in text or "hash" in text)
