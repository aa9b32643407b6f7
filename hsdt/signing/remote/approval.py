"""Asynchronous hash signing with approval on the teacher's phone (VNPT SmartCA's shape).

The service submits the batch's hashes under a transaction id of its own choosing (so that
a submission lost on the way can be sent again without creating a second one), the teacher
confirms in the provider's app, and the result is fetched by polling or after a callback.
A callback is only a *notification*: it carries no signature, and whatever it says is
fetched again from the provider, so a forged one can at worst cause a poll. It is still
authenticated (HMAC over timestamp and body) and replay-proof (each event id once, in a
time window), because a replayed or forged one must be refused and audited.

A further provider is one adapter implementing :class:`ApprovalProvider` plus its section
in the providers' configuration (:mod:`hsdt.signing.remote.providers`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from hsdt.signing.remote.common import RemoteCertificate, RemoteSigningError

CALLBACK_WINDOW_S = 300
"""A callback older or newer than this (by its own timestamp) is refused: with the event id
kept for longer than the window, a captured callback cannot be replayed later."""


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True)
class HashToSign:
    doc_id: str
    """Our name for the item (the preparation id): how a signature finds its record."""
    digest: bytes
    """SHA-256 of the CMS signed attributes."""


@dataclass(frozen=True)
class Submission:
    transaction_id: str
    provider_ref: str
    expires_at: datetime | None


@dataclass(frozen=True)
class ApprovalStatus:
    state: ApprovalState
    reason: str | None = None
    signatures: Mapping[str, bytes] | None = None
    """doc_id → signature value, when approved."""


@dataclass(frozen=True)
class CallbackEvent:
    event_id: str
    transaction_id: str
    state: ApprovalState


class ApprovalProvider(Protocol):
    """What the service needs from an asynchronous provider."""

    name: str

    def certificate(self, account: str) -> RemoteCertificate:
        """The user's current signing certificate and its chain."""

    def submit(self, account: str, certificate: RemoteCertificate, transaction_id: str, description: str,
               items: Sequence[HashToSign]) -> Submission:
        """Send hashes for approval. Idempotent for the same transaction id and items."""

    def status(self, transaction_id: str) -> ApprovalStatus:
        """Where the transaction stands; signatures once approved."""

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: datetime) -> CallbackEvent:
        """Authenticate a callback; raise :class:`CallbackRefused` when it is not genuine."""


class CallbackRefused(RemoteSigningError):
    """A callback that is not from the provider, too old, or malformed."""


def verify_hmac_callback(secret: bytes, headers: Mapping[str, str], body: bytes, now: datetime, *,
                         signature_header: str = "x-callback-signature",
                         timestamp_header: str = "x-callback-timestamp") -> dict[str, object]:
    """Check ``sha256=<hex HMAC(secret, timestamp + "." + body)>`` and the time window.

    Header names are matched case-insensitively (HTTP says they are); the comparison is in
    constant time. Returns the parsed JSON body.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    given = lower.get(signature_header, "")
    stamp = lower.get(timestamp_header, "")
    if not given.startswith("sha256=") or not stamp.isdigit():
        raise CallbackRefused("Thông báo gọi lại thiếu chữ ký hoặc dấu thời gian.", code="callback_unsigned")
    expected = hmac.new(secret, stamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.removeprefix("sha256="), expected):
        raise CallbackRefused("Chữ ký của thông báo gọi lại không đúng.", code="callback_bad_signature")
    if abs(now.timestamp() - int(stamp)) > CALLBACK_WINDOW_S:
        raise CallbackRefused("Thông báo gọi lại quá cũ hoặc có thời điểm không hợp lệ.",
                              code="callback_stale")
    try:
        data = json.loads(body)
    except ValueError:
        raise CallbackRefused("Nội dung thông báo gọi lại không phải JSON.",
                              code="callback_malformed") from None
    if not isinstance(data, dict):
        raise CallbackRefused("Nội dung thông báo gọi lại không đúng định dạng.", code="callback_malformed")
    return data
