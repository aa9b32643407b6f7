"""What every remote-signing shape shares: the certificate a provider reports, its errors,
and an HTTP client that retries only what is safe to retry."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from asn1crypto import x509

from hsdt.signing.keys import fingerprint


class RemoteSigningError(Exception):
    """A provider refused or failed. ``message`` is Vietnamese and says what to do.

    ``retryable`` is True for faults of the way (HTTP 5xx, a dropped connection, a timeout):
    the same request may be sent again. ``code`` is the provider's own error code when it gave
    one (CSC: ``invalid_pin``, ``invalid_request`` …), else ours.
    """

    def __init__(self, message: str, *, code: str = "remote_error", retryable: bool = False,
                 status: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RemoteCertificate:
    """A signing certificate as a provider reports it for one of its users."""

    credential_id: str
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    """Issuers to embed beside ``cert`` (the trust anchor may be among them; harmless)."""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    @property
    def subject(self) -> str:
        return str(self.cert.subject.human_friendly)


def load_certificates(items: list[Any], provider: str) -> list[x509.Certificate]:
    """Base64 DER certificates from a provider's answer, refused clearly when unreadable."""
    out = []
    for item in items:
        try:
            cert = x509.Certificate.load(base64.b64decode(str(item), validate=True))
            _ = cert.subject, cert.public_key.algorithm  # parse now, not later
        except (ValueError, TypeError) as exc:
            raise RemoteSigningError(
                f"Nhà cung cấp «{provider}» trả về một chứng thư số không đọc được ({exc}).",
                code="bad_certificate") from None
        out.append(cert)
    return out


@dataclass(frozen=True)
class Retry:
    """How many times and how patiently a request that failed on the way is sent again."""

    attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def delays(self) -> list[float]:
        """Exponential backoff with full jitter, so that many workers do not retry in step."""
        return [random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** i))
                for i in range(self.attempts - 1)]


def send(provider: str, call: Callable[[], httpx.Response], retry: Retry,
         *, sleep: Callable[[float], None] = time.sleep) -> httpx.Response:
    """One HTTP exchange, retried on 5xx and transport errors only; 4xx is an answer."""
    last: RemoteSigningError | None = None
    for delay in [*retry.delays(), None]:
        try:
            response = call()
        except httpx.TimeoutException as exc:
            last = RemoteSigningError(f"Nhà cung cấp «{provider}» không trả lời kịp ({exc}).",
                                      code="timeout", retryable=True, detail=repr(exc))
        except httpx.TransportError as exc:
            last = RemoteSigningError(f"Mất kết nối tới nhà cung cấp «{provider}» ({exc}).",
                                      code="connection", retryable=True, detail=repr(exc))
        else:
            if response.status_code < 500:
                return response
            last = RemoteSigningError(
                f"Nhà cung cấp «{provider}» đang gặp lỗi (HTTP {response.status_code}).",
                code="provider_unavailable", retryable=True, status=response.status_code,
                detail=response.text[:500])
        if delay is None:
            break
        sleep(delay)
    assert last is not None
    raise last
