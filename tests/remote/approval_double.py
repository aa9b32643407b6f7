"""A strict test double of an asynchronous hash-signing provider with phone approval (VNPT SmartCA-like).

Why: the product's adapter (``hsdt.signing.remote.smartca``) must be tested over real HTTP, against
a separate process, with the user's approval, refusal, expiry, callbacks and network faults under
the test's control — none of which a real provider lets a test drive. Keys are software (PKCS#12).

Run it as its own process::

    python -m tests.remote.approval_double --config CONFIG.json --port PORT

or, in tests, with :func:`running_approval_provider`, which yields an :class:`ApprovalServer`.

Provider protocol (JSON; the HTTP status always equals the body's ``status_code``; every body
carries ``sp_id``/``sp_password``; unknown or missing/ill-typed fields give 400 naming the field):

* ``POST /v1/credentials/get_certificate`` — the user's certificates.
* ``POST /v1/signatures/sign`` — submit 1–100 SHA-256 hashes under a client-chosen
  ``transaction_id``; idempotent for identical content, 409 for different content.
* ``POST /v1/signatures/sign/{transaction_id}/status`` — pending / approved / rejected / expired.

Callbacks (when a URL is set) go out on approve, reject and expire, signed with
``X-Callback-Signature: sha256=HMAC(secret, timestamp + "." + body)``.

Control API under ``/_test/`` (no auth, not part of the protocol): approve / reject / expire /
resend callback of a transaction, list transactions, the request and callback log, injected
faults (``fail_next`` with a status, ``drop_next`` closing the connection), callback URL, reset.
Transactions, log and callback URL are persisted to a JSON file so the double can be restarted
without losing them; injected faults are not persisted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import pkcs12
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

AUTH_MESSAGE = "Sai thông tin xác thực của bên cung cấp dịch vụ"
EXPIRED_REASON = "Hết thời gian chờ xác nhận"
DEFAULT_REJECT_REASON = "Người dùng từ chối ký"
STATUS_MESSAGES = {
    "pending": "Đang chờ người dùng xác nhận",
    "approved": "Người dùng đã xác nhận",
    "rejected": "Người dùng đã từ chối",
    "expired": EXPIRED_REASON,
}
DEFAULT_SP_ID = "hsdt-test"
DEFAULT_SP_PASSWORD = "hsdt-test-sp-mật-khẩu"
DEFAULT_CALLBACK_SECRET = "hsdt-test-callback-secret"
MAX_SIGN_FILES = 100
TRANSACTION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
HASH_RE = re.compile(r"[0-9a-f]{64}")
TIME_STAMP_RE = re.compile(r"\d{14}")
STATUS_PATH_RE = re.compile(r"/v1/signatures/sign/([^/]+)/status")
CALLBACK_TIMEOUT_S = 5.0
_REPO_ROOT = Path(__file__).resolve().parents[2]
_MODULE = "tests.remote.approval_double"

Json = dict[str, Any]


# --- shared between the test process and the double -------------------------------------------


@dataclass
class ApprovalUser:
    """One certificate of a provider account; several entries may share a ``user_id``."""

    user_id: str
    serial_number: str
    cert_der: bytes
    chain_der: list[bytes]
    p12_path: Path
    p12_passphrase: bytes
    cert_status: str = "active"

    @classmethod
    def from_identity(cls, identity: Any, *, user_id: str | None = None, serial_number: str | None = None,
                      root_der: bytes | None = None, cert_status: str = "active",
                      p12_passphrase: bytes | None = None) -> ApprovalUser:
        """From a ``hsdt.signing.testpki.Identity`` (software key only): the account the provider
        would hold for that person. ``user_id`` defaults to the person id, ``serial_number`` to the
        certificate's serial in hex; ``root_der`` is appended to the chain (testpki leaves it out)."""
        from hsdt.signing import testpki

        if identity.p12_path is None:
            raise ValueError(f"identity {identity.name!r} has no software key (PKCS#12); the double "
                             "signs with software keys only")
        chain = [c.dump() for c in identity.chain] + ([root_der] if root_der is not None else [])
        return cls(
            user_id=user_id if user_id is not None else (identity.person_id or identity.name),
            serial_number=serial_number if serial_number is not None
            else format(identity.cert.serial_number, "x"),
            cert_der=identity.cert.dump(),
            chain_der=chain,
            p12_path=Path(identity.p12_path),
            p12_passphrase=p12_passphrase if p12_passphrase is not None else testpki.SOFTWARE_P12_PASSPHRASE,
            cert_status=cert_status,
        )

    def to_config(self) -> Json:
        return {
            "user_id": self.user_id,
            "serial_number": self.serial_number,
            "cert_der": _b64(self.cert_der),
            "chain_der": [_b64(c) for c in self.chain_der],
            "p12_path": str(self.p12_path),
            "p12_passphrase": _b64(self.p12_passphrase),
            "cert_status": self.cert_status,
        }

    @classmethod
    def from_config(cls, d: Mapping[str, Any]) -> ApprovalUser:
        return cls(
            user_id=d["user_id"],
            serial_number=d["serial_number"],
            cert_der=base64.b64decode(d["cert_der"]),
            chain_der=[base64.b64decode(c) for c in d["chain_der"]],
            p12_path=Path(d["p12_path"]),
            p12_passphrase=base64.b64decode(d["p12_passphrase"]),
            cert_status=d.get("cert_status", "active"),
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _now() -> datetime:
    return datetime.now(UTC)


def iso_utc(t: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` and milliseconds (sub-second TTLs must stay visible)."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def callback_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``, the callback's signature header."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def callback_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers the double sends with a callback body (timestamp defaults to now)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": "application/json", "X-Callback-Timestamp": ts,
            "X-Callback-Signature": callback_signature(secret, ts, body)}


def verify_callback(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """True when ``headers`` carry a valid signature of ``body`` (a receiver's check, for tests)."""
    lower = {k.lower(): v for k, v in headers.items()}
    ts, sig = lower.get("x-callback-timestamp"), lower.get("x-callback-signature")
    if ts is None or sig is None:
        return False
    return hmac.compare_digest(callback_signature(secret, ts, body), sig)


# --- the provider (runs in its own process) -----------------------------------------------------


class _Reply(Exception):
    """An error answer: raised anywhere in a handler, turned into the envelope with that status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _envelope(status: int, message: str, data: Any) -> JSONResponse:
    return JSONResponse({"status_code": status, "message": message, "data": data}, status_code=status)


def _field(body: Mapping[str, Any], name: str, kind: type, *, required: bool = True,
           pattern: re.Pattern[str] | None = None, where: str = "") -> Any:
    """The value of ``name`` checked for presence and JSON type; 400 names the field otherwise."""
    label = f"{where}{name}"
    if name not in body or body[name] is None:
        if required:
            raise _Reply(400, f"Thiếu trường bắt buộc: {label}")
        return None
    value = body[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _Reply(400, f"Trường {label} sai kiểu dữ liệu")
    if pattern is not None and not pattern.fullmatch(value):
        raise _Reply(400, f"Trường {label} không hợp lệ")
    return value


def _only(body: Mapping[str, Any], allowed: Iterable[str], where: str = "") -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise _Reply(400, "Trường không được hỗ trợ: " + ", ".join(where + u for u in unknown))


def _sign_digest(key: Any, digest: bytes) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    raise TypeError(f"unsupported key type {type(key).__name__}")


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class _Account:
    user: ApprovalUser
    cert: x509.Certificate
    key: Any

    def certificate_info(self) -> Json:
        chain = [x509.load_der_x509_certificate(c) for c in self.user.chain_der]
        root = chain[-1] if chain and chain[-1].issuer == chain[-1].subject else None
        return {
            "serial_number": self.user.serial_number,
            "cert_status": self.user.cert_status,
            "cert_data": _b64(self.user.cert_der),
            "chain_data": {
                "ca_cert": _b64(self.user.chain_der[0]) if chain else None,
                "root_cert": _b64(root.public_bytes(serialization.Encoding.DER)) if root else None,
            },
            "cert_valid_from": iso_utc(self.cert.not_valid_before_utc),
            "cert_valid_to": iso_utc(self.cert.not_valid_after_utc),
        }


def _load_account(user: ApprovalUser) -> _Account:
    """Load the PKCS#12 key and refuse to start if it does not belong to the certificate."""
    cert = x509.load_der_x509_certificate(user.cert_der)
    key, _, _ = pkcs12.load_key_and_certificates(user.p12_path.read_bytes(), user.p12_passphrase)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SystemExit(f"approval double: {user.p12_path}: no RSA or EC private key")
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise SystemExit(f"approval double: key in {user.p12_path} does not match the certificate "
                         f"of {user.user_id}/{user.serial_number}")
    return _Account(user, cert, key)


SIGN_FIELDS = ("sp_id", "sp_password", "user_id", "serial_number", "transaction_id", "transaction_desc",
               "time_stamp", "sign_files")
CONTENT_FIELDS = ("user_id", "serial_number", "transaction_desc", "time_stamp", "sign_files")
SIGN_FILE_FIELDS = ("doc_id", "file_type", "data_to_be_signed", "sign_type")


class Provider:
    """The provider's state and behaviour; every mutation is persisted to ``state_path``."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.sp_id: str = config["sp_id"]
        self.sp_password: str = config["sp_password"]
        self.callback_secret: str = config["callback_secret"]
        self.configured_callback_url: str | None = config.get("callback_url")
        self.ttl = timedelta(seconds=float(config["ttl_s"]))
        self.state_path = Path(config["state_path"])
        self.accounts: dict[tuple[str, str], _Account] = {}
        for raw in config["users"]:
            acc = _load_account(ApprovalUser.from_config(raw))
            self.accounts[(acc.user.user_id, acc.user.serial_number)] = acc
        self.transactions: dict[str, Json] = {}
        self.log: list[Json] = []
        self.callback_url = self.configured_callback_url
        self.faults: list[Json] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        if self.state_path.exists():
            state = json.loads(self.state_path.read_text("utf-8"))
            self.transactions = state["transactions"]
            self.log = state["log"]
            self.callback_url = state["callback_url"]

    # --- persistence and log

    def persist(self) -> None:
        state = {"transactions": self.transactions, "log": self.log, "callback_url": self.callback_url}
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), "utf-8")
        os.replace(tmp, self.state_path)

    def record_request(self, method: str, path: str, tx_id: str | None, status: int | None,
                       fault: str | None = None) -> None:
        self.log.append({"kind": "request", "at": iso_utc(_now()), "method": method, "path": path,
                         "transaction_id": tx_id, "status_code": status, "fault": fault})
        self.persist()

    def reset(self) -> None:
        self.transactions.clear()
        self.log.clear()
        self.faults.clear()
        self.callback_url = self.configured_callback_url
        self.persist()

    # --- faults

    def add_faults(self, body: Mapping[str, Any]) -> None:
        _only(body, ("fail_next", "status", "paths", "message", "drop_next"))
        paths = _field(body, "paths", list, required=False) or []
        if not all(isinstance(p, str) for p in paths):
            raise _Reply(400, "Trường paths sai kiểu dữ liệu")
        status = _field(body, "status", int, required=False) or 500
        if not 100 <= status <= 599:
            raise _Reply(400, "Trường status không hợp lệ")
        message = _field(body, "message", str, required=False) or "Lỗi giả lập của bộ kiểm thử"
        for kind, name in (("fail", "fail_next"), ("drop", "drop_next")):
            n = _field(body, name, int, required=False) or 0
            if n < 0:
                raise _Reply(400, f"Trường {name} không hợp lệ")
            if n:
                self.faults.append({"kind": kind, "remaining": n, "status": status, "message": message,
                                    "paths": paths})

    def take_fault(self, path: str) -> Json | None:
        """The first armed fault matching ``path`` (``{name}`` and ``*`` are wildcards), consumed."""
        for rule in self.faults:
            patterns = [re.sub(r"\{[^}]*\}", "*", p) for p in rule["paths"]]
            if not patterns or any(fnmatchcase(path, p) for p in patterns):
                rule["remaining"] -= 1
                self.faults = [r for r in self.faults if r["remaining"] > 0]
                return rule
        return None

    # --- protocol

    def authenticate(self, body: Mapping[str, Any], allowed: Iterable[str]) -> None:
        sp_id = _field(body, "sp_id", str)
        sp_password = _field(body, "sp_password", str)
        ok_id = hmac.compare_digest(sp_id.encode(), self.sp_id.encode())
        ok_pw = hmac.compare_digest(sp_password.encode(), self.sp_password.encode())
        if not (ok_id and ok_pw):
            raise _Reply(401, AUTH_MESSAGE)
        _only(body, allowed)

    def account(self, user_id: str, serial_number: str | None) -> list[_Account]:
        found = [a for (uid, _), a in self.accounts.items() if uid == user_id]
        if not found:
            raise _Reply(404, f"Không tìm thấy người dùng {user_id}")
        if serial_number is not None:
            found = [a for a in found if a.user.serial_number == serial_number]
            if not found:
                raise _Reply(404, f"Không tìm thấy chứng thư số {serial_number} của người dùng {user_id}")
        return found

    def get_certificate(self, body: Mapping[str, Any], tx_id: str | None) -> tuple[str, Any]:
        self.authenticate(body, ("sp_id", "sp_password", "user_id", "serial_number"))
        user_id = _field(body, "user_id", str)
        serial = _field(body, "serial_number", str, required=False)
        accounts = self.account(user_id, serial)
        return "success", {"user_certificates": [a.certificate_info() for a in accounts]}

    def sign(self, body: Mapping[str, Any], tx_id: str | None) -> tuple[str, Any]:
        self.authenticate(body, SIGN_FIELDS)
        user_id = _field(body, "user_id", str)
        serial = _field(body, "serial_number", str)
        tx_id = _field(body, "transaction_id", str, pattern=TRANSACTION_ID_RE)
        _field(body, "transaction_desc", str)
        stamp = _field(body, "time_stamp", str, pattern=TIME_STAMP_RE)
        try:
            datetime.strptime(stamp, "%Y%m%d%H%M%S")
        except ValueError:
            raise _Reply(400, "Trường time_stamp không hợp lệ") from None
        files = _field(body, "sign_files", list)
        if not 1 <= len(files) <= MAX_SIGN_FILES:
            raise _Reply(400, f"Trường sign_files phải có từ 1 đến {MAX_SIGN_FILES} phần tử")
        for i, f in enumerate(files):
            where = f"sign_files[{i}]."
            if not isinstance(f, dict):
                raise _Reply(400, f"Trường sign_files[{i}] sai kiểu dữ liệu")
            _only(f, SIGN_FILE_FIELDS, where)
            if not _field(f, "doc_id", str, where=where):
                raise _Reply(400, f"Trường {where}doc_id không hợp lệ")
            if _field(f, "file_type", str, where=where) != "pdf":
                raise _Reply(400, f"Trường {where}file_type không hợp lệ")
            _field(f, "data_to_be_signed", str, pattern=HASH_RE, where=where)
            if _field(f, "sign_type", str, where=where) != "hash":
                raise _Reply(400, f"Trường {where}sign_type không hợp lệ")
        doc_ids = [f["doc_id"] for f in files]
        if len(set(doc_ids)) != len(doc_ids):
            raise _Reply(400, "Trường sign_files có doc_id trùng nhau")
        content = {k: body[k] for k in CONTENT_FIELDS}
        existing = self.transactions.get(tx_id)
        if existing is not None:
            if {k: existing[k] for k in CONTENT_FIELDS} != content:
                raise _Reply(409, f"Giao dịch {tx_id} đã tồn tại với nội dung khác")
            return "success", self.submit_answer(existing)
        (acc,) = self.account(user_id, serial)
        if acc.user.cert_status != "active":
            raise _Reply(400, f"Chứng thư số không ở trạng thái hoạt động ({acc.user.cert_status})")
        now = _now()
        tx: Json = {"transaction_id": tx_id, "tran_code": uuid.uuid4().hex, **content,
                    "created_at": iso_utc(now), "expires_at": iso_utc(now + self.ttl), "status": "pending",
                    "reason": None, "signatures": None, "finished_at": None, "last_event": None}
        self.transactions[tx_id] = tx
        self.persist()
        return "success", self.submit_answer(tx)

    @staticmethod
    def submit_answer(tx: Mapping[str, Any]) -> Json:
        return {"transaction_id": tx["transaction_id"], "tran_code": tx["tran_code"],
                "expires_at": tx["expires_at"]}

    def status(self, body: Mapping[str, Any], tx_id: str | None) -> tuple[str, Any]:
        self.authenticate(body, ("sp_id", "sp_password"))
        assert tx_id is not None
        if not TRANSACTION_ID_RE.fullmatch(tx_id):
            raise _Reply(400, "Trường transaction_id không hợp lệ")
        tx = self.transactions.get(tx_id)
        if tx is None:
            raise _Reply(404, f"Không tìm thấy giao dịch {tx_id}")
        if self.refresh(tx):
            self.spawn(self.deliver(tx))
        data = {k: tx[k] for k in ("transaction_id", "tran_code", "status", "reason", "signatures")}
        return STATUS_MESSAGES[tx["status"]], data

    # --- transitions

    def refresh(self, tx: Json) -> bool:
        """Expire a pending transaction whose time is up; True when it just did."""
        if tx["status"] == "pending" and _now() >= datetime.fromisoformat(tx["expires_at"]):
            self.finish(tx, "expired", EXPIRED_REASON)
            return True
        return False

    def finish(self, tx: Json, status: str, reason: str | None, signatures: list[Json] | None = None) -> None:
        now = _now()
        tx.update(status=status, reason=reason, signatures=signatures, finished_at=iso_utc(now),
                  last_event={"event_id": uuid.uuid4().hex, "status": status, "issued_at": iso_utc(now)})
        self.persist()

    def pending(self, tx_id: str) -> Json:
        tx = self.transactions.get(tx_id)
        if tx is None:
            raise _Reply(404, f"Không tìm thấy giao dịch {tx_id}")
        if self.refresh(tx):
            self.spawn(self.deliver(tx))
        if tx["status"] != "pending":
            raise _Reply(409, f"Giao dịch {tx_id} không còn chờ xác nhận ({tx['status']})")
        return tx

    def approve(self, tx: Json, corrupt: Iterable[str] = ()) -> None:
        acc = self.accounts[(tx["user_id"], tx["serial_number"])]
        corrupt = set(corrupt)
        signatures = []
        for f in tx["sign_files"]:
            sig = bytearray(_sign_digest(acc.key, bytes.fromhex(f["data_to_be_signed"])))
            if f["doc_id"] in corrupt:
                sig[len(sig) // 2] ^= 0x01
            signatures.append({"doc_id": f["doc_id"], "signature_value": _b64(bytes(sig))})
        self.finish(tx, "approved", None, signatures)

    # --- callbacks

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, tx: Json, new_event: bool = False) -> Json | None:
        """POST the transaction's last event to the callback URL; the outcome goes to the log, never
        back into the transaction (a failed delivery does not undo an approval)."""
        url = self.callback_url
        if url is None or tx["last_event"] is None:
            return None
        if new_event:
            tx["last_event"] = {**tx["last_event"], "event_id": uuid.uuid4().hex,
                                "issued_at": iso_utc(_now())}
        event = tx["last_event"]
        body = json.dumps({"event_id": event["event_id"], "transaction_id": tx["transaction_id"],
                           "tran_code": tx["tran_code"], "status": event["status"],
                           "issued_at": event["issued_at"]}, separators=(",", ":")).encode()
        entry: Json = {"kind": "callback", "at": iso_utc(_now()), "url": url,
                       "transaction_id": tx["transaction_id"], "event_id": event["event_id"],
                       "event_status": event["status"], "status_code": None, "delivered": False,
                       "error": None}
        try:
            async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_S) as client:
                r = await client.post(url, content=body, headers=callback_headers(self.callback_secret, body))
            entry.update(status_code=r.status_code, delivered=200 <= r.status_code < 300)
        except httpx.HTTPError as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        self.log.append(entry)
        self.persist()
        return entry

    async def sweep(self) -> None:
        """Expire pending transactions on time, so the expiry callback goes out without polling."""
        while True:
            await asyncio.sleep(0.1)
            for tx in list(self.transactions.values()):
                try:
                    if self.refresh(tx):
                        self.spawn(self.deliver(tx))
                except Exception as exc:  # keep sweeping; the failure is visible in the output
                    print(f"approval double: sweep failed: {exc!r}", file=sys.stderr, flush=True)


async def _drop_connection(receive: Receive) -> None:
    """Close the TCP connection without a response (uvicorn h11: the receive callable's cycle holds
    the transport), then wait until the server has seen the disconnect so it writes no 500."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("approval double: drop_next needs uvicorn's h11 protocol (no transport found)")
    transport.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2):
            while (await receive())["type"] != "http.disconnect":
                pass


class _FaultMiddleware:
    """Answers (or drops) provider requests matching an armed fault before the app sees them."""

    def __init__(self, app: ASGIApp, provider: Provider) -> None:
        self.app = app
        self.provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_test/"):
            await self.app(scope, receive, send)
            return
        rule = self.provider.take_fault(scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        m = STATUS_PATH_RE.fullmatch(scope["path"])
        tx_id = m.group(1) if m else None
        if rule["kind"] == "drop":
            self.provider.record_request(scope["method"], scope["path"], tx_id, None, fault="drop")
            await _drop_connection(receive)
            return
        self.provider.record_request(scope["method"], scope["path"], tx_id, rule["status"], fault="fail")
        await _envelope(rule["status"], rule["message"], None)(scope, receive, send)


async def _json_body(request: Request, *, optional: bool = False) -> Json:
    raw = await request.body()
    if optional and not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise _Reply(400, "Nội dung yêu cầu không phải JSON hợp lệ") from None
    if not isinstance(data, dict):
        raise _Reply(400, "Nội dung yêu cầu phải là một đối tượng JSON")
    return data


def create_app(provider: Provider) -> ASGIApp:
    """The provider and its control API as one ASGI app (faults wrap everything but ``/_test/``)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(provider.sweep())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if not request.url.path.startswith("/_test/"):
            provider.record_request(request.method, request.url.path, None, exc.status_code)
        return _envelope(exc.status_code, str(exc.detail), None)

    Handler = Callable[[Mapping[str, Any], str | None], tuple[str, Any]]

    async def protocol(request: Request, handler: Handler) -> JSONResponse:
        tx_id: str | None = request.path_params.get("transaction_id")
        try:
            body = await _json_body(request)
            if tx_id is None and isinstance(body.get("transaction_id"), str):
                tx_id = body["transaction_id"]
            message, data = handler(body, tx_id)
            response = _envelope(200, message, data)
        except _Reply as r:
            response = _envelope(r.status, r.message, None)
        provider.record_request(request.method, request.url.path, tx_id, response.status_code)
        return response

    @app.post("/v1/credentials/get_certificate")
    async def get_certificate(request: Request) -> JSONResponse:
        return await protocol(request, provider.get_certificate)

    @app.post("/v1/signatures/sign")
    async def sign(request: Request) -> JSONResponse:
        return await protocol(request, provider.sign)

    @app.post("/v1/signatures/sign/{transaction_id}/status")
    async def status(request: Request) -> JSONResponse:
        return await protocol(request, provider.status)

    # --- control API (tests only)

    async def control(action: Callable[[], Awaitable[Any]]) -> JSONResponse:
        try:
            return _envelope(200, "ok", await action())
        except _Reply as r:
            return _envelope(r.status, r.message, None)

    @app.get("/_test/health")
    async def health() -> JSONResponse:
        return _envelope(200, "ok", {"pid": os.getpid()})

    @app.post("/_test/transactions/{tx_id}/approve")
    async def approve(tx_id: str, request: Request) -> JSONResponse:
        async def run() -> Json:
            body = await _json_body(request, optional=True)
            _only(body, ("corrupt_doc_ids",))
            corrupt = _field(body, "corrupt_doc_ids", list, required=False) or []
            tx = provider.pending(tx_id)
            provider.approve(tx, corrupt)
            return {"transaction": tx, "callback": await provider.deliver(tx)}
        return await control(run)

    @app.post("/_test/transactions/{tx_id}/reject")
    async def reject(tx_id: str, request: Request) -> JSONResponse:
        async def run() -> Json:
            body = await _json_body(request, optional=True)
            _only(body, ("reason",))
            reason = _field(body, "reason", str, required=False) or DEFAULT_REJECT_REASON
            tx = provider.pending(tx_id)
            provider.finish(tx, "rejected", reason)
            return {"transaction": tx, "callback": await provider.deliver(tx)}
        return await control(run)

    @app.post("/_test/transactions/{tx_id}/expire")
    async def expire(tx_id: str) -> JSONResponse:
        async def run() -> Json:
            tx = provider.pending(tx_id)
            provider.finish(tx, "expired", EXPIRED_REASON)
            return {"transaction": tx, "callback": await provider.deliver(tx)}
        return await control(run)

    @app.post("/_test/transactions/{tx_id}/callback")
    async def resend(tx_id: str, request: Request) -> JSONResponse:
        async def run() -> Json:
            body = await _json_body(request, optional=True)
            _only(body, ("new_event",))
            tx = provider.transactions.get(tx_id)
            if tx is None:
                raise _Reply(404, f"Không tìm thấy giao dịch {tx_id}")
            if tx["last_event"] is None:
                raise _Reply(409, f"Giao dịch {tx_id} chưa có sự kiện để gửi lại")
            if provider.callback_url is None:
                raise _Reply(409, "Chưa đặt địa chỉ callback")
            return {"transaction": tx, "callback": await provider.deliver(tx, bool(body.get("new_event")))}
        return await control(run)

    @app.get("/_test/transactions")
    async def transactions() -> JSONResponse:
        async def run() -> Any:
            for tx in provider.transactions.values():
                if provider.refresh(tx):
                    provider.spawn(provider.deliver(tx))
            return list(provider.transactions.values())
        return await control(run)

    @app.get("/_test/log")
    async def log() -> JSONResponse:
        async def run() -> Any:
            return provider.log
        return await control(run)

    @app.post("/_test/faults")
    async def faults(request: Request) -> JSONResponse:
        async def run() -> Any:
            provider.add_faults(await _json_body(request))
            return provider.faults
        return await control(run)

    @app.get("/_test/faults")
    async def list_faults() -> JSONResponse:
        async def run() -> Any:
            return provider.faults
        return await control(run)

    @app.post("/_test/callback_url")
    async def set_callback_url(request: Request) -> JSONResponse:
        async def run() -> Any:
            body = await _json_body(request)
            _only(body, ("url",))
            provider.callback_url = _field(body, "url", str, required=False)
            provider.persist()
            return {"url": provider.callback_url}
        return await control(run)

    @app.post("/_test/reset")
    async def reset() -> JSONResponse:
        async def run() -> Any:
            provider.reset()
            return None
        return await control(run)

    return _FaultMiddleware(app, provider)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True,
                        help="JSON written by running_approval_provider")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    provider = Provider(json.loads(args.config.read_text("utf-8")))
    # h11 explicitly: dropping a connection relies on its request cycle exposing the transport.
    uvicorn.run(create_app(provider), host=args.host, port=args.port, http="h11", ws="none",
                lifespan="on", log_level="warning", access_log=False)


# --- the test side: start, drive and stop the double --------------------------------------------


class ApprovalDoubleError(RuntimeError):
    """The double did not start or a control call failed (the message says which and why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ApprovalServer:
    """A running double: its URL and credentials for the adapter, and control methods for the test."""

    tmp_dir: Path
    port: int
    sp_id: str
    sp_password: str
    callback_secret: str
    configured_callback_url: str | None
    callback_url: str | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.tmp_dir / "approval-double.json"

    @property
    def state_path(self) -> Path:
        return self.tmp_dir / "approval-state.json"

    @property
    def output_path(self) -> Path:
        """stdout and stderr of the double's process (read it when something goes wrong)."""
        return self.tmp_dir / "approval-double.out"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- process

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the process (loading persisted transactions) and wait until it answers."""
        if self.running:
            return
        with self.output_path.open("ab") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", _MODULE, "--config", str(self.config_path), "--port", str(self.port)],
                cwd=_REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ApprovalDoubleError(f"approval double exited with {self._process.returncode}:\n"
                                          + self._output_tail())
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/_test/health", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        raise ApprovalDoubleError(f"approval double did not answer on {self.url} within {timeout_s} s:\n"
                                  + self._output_tail())

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the state file stays for a later start()."""
        proc, self._process = self._process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def _output_tail(self) -> str:
        try:
            return self.output_path.read_text("utf-8", errors="replace")[-4000:]
        except OSError as exc:
            return f"(no output: {exc})"

    # --- control API

    def _control(self, method: str, path: str, body: Json | None = None) -> Any:
        r = httpx.request(method, self.url + path, json=body, timeout=CALLBACK_TIMEOUT_S + 10)
        if r.status_code != 200:
            raise ApprovalDoubleError(f"{method} {path} -> {r.status_code}: {r.text}")
        return r.json()["data"]

    def approve(self, tx_id: str, *, corrupt_doc_ids: Iterable[str] = ()) -> Json:
        """The user approves on the phone: every hash is signed (``corrupt_doc_ids`` get a flipped
        bit, to test the adapter's own check). Returns ``{"transaction", "callback"}``."""
        return self._control("POST", f"/_test/transactions/{tx_id}/approve",
                             {"corrupt_doc_ids": list(corrupt_doc_ids)})

    def reject(self, tx_id: str, reason: str = DEFAULT_REJECT_REASON) -> Json:
        return self._control("POST", f"/_test/transactions/{tx_id}/reject", {"reason": reason})

    def expire(self, tx_id: str) -> Json:
        return self._control("POST", f"/_test/transactions/{tx_id}/expire")

    def resend_callback(self, tx_id: str, *, new_event: bool = False) -> Json:
        """Deliver the last event again (same ``event_id`` unless ``new_event``), freshly signed."""
        return self._control("POST", f"/_test/transactions/{tx_id}/callback", {"new_event": new_event})

    def transactions(self) -> list[Json]:
        return list(self._control("GET", "/_test/transactions"))

    def transaction(self, tx_id: str) -> Json:
        found = [t for t in self.transactions() if t["transaction_id"] == tx_id]
        if not found:
            raise ApprovalDoubleError(f"no transaction {tx_id!r} in the approval double")
        return found[0]

    def log(self) -> list[Json]:
        """Provider requests (``kind: request``) and callback deliveries (``kind: callback``), in order."""
        return list(self._control("GET", "/_test/log"))

    def requests(self) -> list[Json]:
        return [e for e in self.log() if e["kind"] == "request"]

    def callbacks(self) -> list[Json]:
        return [e for e in self.log() if e["kind"] == "callback"]

    def faults(self, *, fail_next: int = 0, status: int = 500, drop_next: int = 0,
               paths: Iterable[str] = (), message: str | None = None) -> list[Json]:
        """Arm faults for the next matching provider requests (``paths``: exact, ``*`` or ``{name}``
        wildcards; empty = every provider path). Returns the armed faults."""
        body: Json = {"fail_next": fail_next, "status": status, "drop_next": drop_next, "paths": list(paths)}
        if message is not None:
            body["message"] = message
        return list(self._control("POST", "/_test/faults", body))

    def set_callback_url(self, url: str | None) -> None:
        self._control("POST", "/_test/callback_url", {"url": url})
        self.callback_url = url

    def reset(self) -> None:
        """Forget transactions, log and faults; the callback URL goes back to the configured one."""
        self._control("POST", "/_test/reset")
        self.callback_url = self.configured_callback_url

    # --- callbacks crafted by the test

    def callback_headers(self, body: bytes, timestamp: int | None = None,
                         secret: str | None = None) -> dict[str, str]:
        return callback_headers(self.callback_secret if secret is None else secret, body, timestamp)

    def send_raw_callback(self, body: bytes, headers: Mapping[str, str],
                          url: str | None = None) -> httpx.Response:
        """POST arbitrary bytes and headers to the callback URL (forged, stale or replayed callbacks)."""
        target = url or self.callback_url
        if target is None:
            raise ApprovalDoubleError("send_raw_callback: no callback URL set")
        return httpx.post(target, content=body, headers=dict(headers), timeout=CALLBACK_TIMEOUT_S)


@contextlib.contextmanager
def running_approval_provider(tmp_dir: Path, users: list[ApprovalUser], *, sp_id: str = DEFAULT_SP_ID,
                              sp_password: str = DEFAULT_SP_PASSWORD,
                              callback_secret: str = DEFAULT_CALLBACK_SECRET, callback_url: str | None = None,
                              ttl_s: float = 300) -> Iterator[ApprovalServer]:
    """Write the config into ``tmp_dir``, run the double on a free loopback port, stop it at exit."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        server = ApprovalServer(tmp_dir, _free_port(), sp_id, sp_password, callback_secret, callback_url,
                                callback_url)
        config = {"sp_id": sp_id, "sp_password": sp_password, "callback_secret": callback_secret,
                  "callback_url": callback_url, "ttl_s": ttl_s, "state_path": str(server.state_path),
                  "users": [u.to_config() for u in users]}
        server.config_path.write_text(json.dumps(config, ensure_ascii=False, indent=1), "utf-8")
        try:
            server.start()
            break
        except ApprovalDoubleError as exc:  # another process took the port between probe and bind
            if attempt == 2 or "address already in use" not in str(exc).lower():
                raise
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    main()
