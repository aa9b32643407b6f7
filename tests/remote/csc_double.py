"""A strict Cloud Signature Consortium (CSC) API server, as test infrastructure.

Not product code: a test double that speaks the CSC protocol (v1 1.0.4.0 under ``/csc/v1/``,
v2 2.0.0.2 under ``/csc/v2/``, OAuth2 client credentials at ``/oauth2/token``) strictly, so that
the product's CSC client is tested against real HTTP, real SAD bookkeeping and real keys.

It runs as its own process, with its own SoftHSM2 token (``SOFTHSM2_CONF`` is set only in that
process's environment; the test process's SoftHSM2 is left alone)::

    python -m tests.remote.csc_double --config CONFIG.json --port PORT

Tests use :func:`running_csc`, which builds the token, imports each credential's private key
with ``softhsm2-util --import``, writes the configuration, starts the process on a free
loopback port and stops it at exit::

    with running_csc(tmp_path, [CredentialSpec(...)]) as csc:
        client = CscClient(csc.base_url, version=2)
        ...
        assert [e["hashes"] for e in csc.calls("signatures/signHash")] == [40]

Keys sign inside the token through python-pkcs11: RSA with ``CKM_RSA_PKCS`` over a DER
``DigestInfo(SHA-256, hash)`` built here (signHash receives a hash), EC with ``CKM_ECDSA``
over the raw hash, the ``r||s`` result re-encoded as a DER ``ECDSA-Sig-Value``.

Error descriptions are the CSC specification's (see the ``E_*`` constants). Observability and
fault injection live under ``/_test/`` (no authentication, not part of CSC):

* ``GET /_test/log``: every CSC/OAuth2 request handled, in order (see :meth:`CscServer.log`);
* ``POST /_test/faults``: ``{"fail_next": N, "status": 500, "methods": [...]}`` answers the next
  N matching requests with that status and a JSON error, without doing anything;
  ``{"drop_after_signatures": K, "drop_consumes": false}`` closes the connection of the first
  signHash request that arrives once K more signatures have been produced, without any HTTP
  response (with ``drop_consumes`` the request is carried out first — SAD spent, signatures
  made — and only the answer is lost);
* ``POST /_test/expire_sads``, ``/_test/expire_tokens``, ``/_test/reset``,
  ``/_test/credential_status`` ``{"credentialID", "status"}``, ``/_test/settings``
  ``{"sad_ttl_s"?, "token_ttl_s"?}``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "CSC_SO_PIN",
    "CSC_TOKEN_LABEL",
    "CSC_USER_PIN",
    "CredentialSpec",
    "CscServer",
    "CscServerError",
    "P12Key",
    "running_csc",
    "start_csc",
]

# --------------------------------------------------------------------------------------------
# Protocol constants
# --------------------------------------------------------------------------------------------

SHA256_OID = "2.16.840.1.101.3.4.2.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
DIGEST_INFO_SHA256 = bytes.fromhex("3031300d060960864801650304020105000420")
"""DER prefix of ``DigestInfo { sha256, NULL }``; the 32-byte hash follows."""

V1_SPECS = "1.0.4.0"
V2_SPECS = "2.0.0.2"
SERVICE_NAME = "HSĐT test CSC"
METHODS = ["auth/login", "auth/revoke", "credentials/list", "credentials/info",
           "credentials/authorize", "signatures/signHash"]
OAUTH2_TOKEN = "oauth2/token"
PROBE_HEADER = "X-CSC-Double-Probe"

CSC_TOKEN_LABEL = "csc"
CSC_USER_PIN = "246810"
CSC_SO_PIN = "13579135"

# Error descriptions (CSC API v1.0.4.0 / v2.0.0.2 tables).
E_INVALID_SAD = "Invalid parameter SAD"
E_SAD_EXPIRED = "SAD expired"
E_HASH_NOT_AUTHORIZED = "Hash is not authorized by the SAD"
E_DIGEST_LENGTH = "Invalid digest value length"
E_BASE64_HASH = "Invalid Base64 hash string parameter"
E_EMPTY_HASH = "Empty hash array"
E_INVALID_CREDENTIAL = "Invalid parameter credentialID"
E_KEY_DISABLED = "The credential identified by credentialID is disabled"
E_NUMSIG_VALUE = "Invalid value for parameter numSignatures"
E_NUMSIG_TOO_HIGH = "Numbers of signatures is too high"
E_PIN = "The PIN is invalid"
E_OTP = "The OTP is invalid"
E_AUTHENTICATION = "An error occurred during authentication process"


def missing(kind: str, name: str) -> str:
    """``Missing (or invalid type) <kind> parameter <name>``, the spec's wording."""
    return f"Missing (or invalid type) {kind} parameter {name}"


def invalid(name: str) -> str:
    return f"Invalid parameter {name}"


_ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("v1", "info"): frozenset({"lang"}),
    ("v2", "info"): frozenset({"lang"}),
    ("v1", "auth/login"): frozenset({"rememberMe", "refresh_token", "clientData"}),
    ("v2", "auth/login"): frozenset({"rememberMe", "refresh_token", "clientData"}),
    ("v1", "auth/revoke"): frozenset({"token", "token_type_hint", "clientData"}),
    ("v2", "auth/revoke"): frozenset({"token", "token_type_hint", "clientData"}),
    ("v1", "credentials/list"): frozenset({"userID", "maxResults", "pageToken", "clientData"}),
    ("v2", "credentials/list"): frozenset({"userID", "maxResults", "pageToken", "credentialInfo",
                                           "certificates", "certInfo", "authInfo", "onlyValid",
                                           "lang", "clientData"}),
    ("v1", "credentials/info"): frozenset({"credentialID", "certificates", "certInfo", "authInfo",
                                           "lang", "clientData"}),
    ("v2", "credentials/info"): frozenset({"credentialID", "certificates", "certInfo", "authInfo",
                                           "lang", "clientData"}),
    ("v1", "credentials/authorize"): frozenset({"credentialID", "numSignatures", "hash", "PIN", "OTP",
                                                "description", "clientData"}),
    ("v2", "credentials/authorize"): frozenset({"credentialID", "numSignatures", "hashes",
                                                "hashAlgorithmOID", "authData", "description",
                                                "clientData"}),
    ("v1", "signatures/signHash"): frozenset({"credentialID", "SAD", "hash", "hashAlgo", "signAlgo",
                                              "signAlgoParams", "clientData"}),
    ("v2", "signatures/signHash"): frozenset({"credentialID", "SAD", "hashes", "hashAlgorithmOID",
                                              "signAlgo", "signAlgoParams", "operationMode",
                                              "validity_period", "response_uri", "clientData"}),
}
"""Parameters each method accepts; anything else is refused (``Invalid parameter X``) so that a
v2 name sent to v1 (``hashes`` for ``hash``) cannot be silently ignored."""


class ApiError(Exception):
    """An HTTP error answer with the CSC/OAuth2 JSON body ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status, headers=self.headers)


def bad_request(description: str, error: str = "invalid_request") -> ApiError:
    return ApiError(400, error, description)


# --------------------------------------------------------------------------------------------
# Server side: state
# --------------------------------------------------------------------------------------------


@dataclass
class _Credential:
    credential_id: str
    user_id: str
    password: str
    pin: str
    otp: str | None
    status: str
    multisign: int
    scal: str
    description: str | None
    key_id: bytes
    certificates: list[bytes]  # end entity first
    key_type: Literal["rsa", "ec"] = "rsa"
    key_len: int = 0
    curve_oid: str | None = None
    cert: cx509.Certificate | None = None

    def __post_init__(self) -> None:
        cert = cx509.load_der_x509_certificate(self.certificates[0])
        self.cert = cert
        pub = cert.public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            self.key_type, self.key_len = "rsa", pub.key_size
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            self.key_type, self.key_len = "ec", pub.curve.key_size
            self.curve_oid = asn1_x509.Certificate.load(self.certificates[0]).public_key[
                "algorithm"]["parameters"].chosen.dotted
        else:
            raise ValueError(f"{self.credential_id}: unsupported key type {type(pub).__name__}")

    @property
    def algos(self) -> list[str]:
        if self.key_type == "rsa":
            return [RSA_ENCRYPTION, SHA256_WITH_RSA]
        return [EC_PUBLIC_KEY, ECDSA_WITH_SHA256]

    def cert_status(self) -> str:
        assert self.cert is not None
        now = dt.datetime.now(dt.UTC)
        return "expired" if now > self.cert.not_valid_after_utc else "valid"

    @property
    def usable(self) -> bool:
        return self.status == "enabled" and self.cert_status() == "valid"


@dataclass
class _Token:
    user_id: str
    expires_at: float
    refresh: str | None = None  # the refresh token this access token came from


@dataclass
class _Sad:
    credential_id: str
    user_id: str
    remaining: int
    hashes: Counter[bytes] | None  # None: any hash (SCAL 1 without a hash list)
    expires_at: float


@dataclass
class _Faults:
    fail_next: int = 0
    fail_status: int = 500
    fail_methods: frozenset[str] | None = None  # None: every CSC/OAuth2 method
    fail_error: str | None = None  # default: server_error for 5xx, else invalid_request
    drop_after: int | None = None  # signatures still to produce before a signHash is dropped
    drop_consumes: bool = False


class _Signer:
    """The token's keys through python-pkcs11 (imported here: the test process never loads it)."""

    def __init__(self, lib_path: str, token_label: str, pin: str) -> None:
        import pkcs11

        self._pkcs11 = pkcs11
        lib = pkcs11.lib(lib_path)
        self._session = lib.get_token(token_label=token_label).open(user_pin=pin)
        self._keys: dict[bytes, Any] = {}

    def _key(self, key_id: bytes) -> Any:
        if key_id not in self._keys:
            self._keys[key_id] = self._session.get_key(
                object_class=self._pkcs11.ObjectClass.PRIVATE_KEY, id=key_id)
        return self._keys[key_id]

    def sign(self, cred: _Credential, digest: bytes) -> bytes:
        from pkcs11.util.ec import encode_ecdsa_signature

        mech = self._pkcs11.Mechanism
        key = self._key(cred.key_id)
        if cred.key_type == "rsa":
            return bytes(key.sign(DIGEST_INFO_SHA256 + digest, mechanism=mech.RSA_PKCS))
        return bytes(encode_ecdsa_signature(key.sign(digest, mechanism=mech.ECDSA)))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._session.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _gentime(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise bad_request(f"Parameter {k} is repeated")
        out[k] = v
    return out


class CscService:
    """The protocol: tokens, credentials, SADs, the request log and injected faults."""

    def __init__(self, config: Mapping[str, Any], signer: _Signer | None) -> None:
        self.config = dict(config)
        self.signer = signer
        self.server: Any = None  # the uvicorn.Server, to find and close a connection
        self.reset()

    # --- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        cfg = self.config
        self.sad_ttl_s = float(cfg.get("sad_ttl_s", 300))
        self.token_ttl_s = float(cfg.get("token_ttl_s", 3600))
        self.credentials: dict[str, _Credential] = {}
        for c in cfg["credentials"]:
            self.credentials[c["credential_id"]] = _Credential(
                credential_id=c["credential_id"], user_id=c["user_id"], password=c["password"],
                pin=c["pin"], otp=c.get("otp"), status=c.get("status", "enabled"),
                multisign=int(c.get("multisign") or cfg.get("multisign", 100)),
                scal=str(c.get("scal", "1")), description=c.get("description"),
                key_id=bytes.fromhex(c["key_id"]),
                certificates=[base64.b64decode(x) for x in c["certificates"]])
        self.users = {c.user_id: c.password for c in self.credentials.values()}
        self.tokens: dict[str, _Token] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user
        self.sads: dict[str, _Sad] = {}
        self.faults = _Faults()
        self.log: list[dict[str, Any]] = []
        self.signatures_made = 0

    # --- the ASGI application ----------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path: str = scope["path"]
        if path.startswith("/_test/"):
            response = await self._test_endpoint(request, path[len("/_test/"):])
        else:
            response = await self._protocol_endpoint(request, path, scope)
        if response is not None:
            await response(scope, receive, send)

    async def _protocol_endpoint(self, request: Request, path: str, scope: dict[str, Any]
                                 ) -> Response | None:
        m = re.fullmatch(r"/csc/(v1|v2)/(.+)", path)
        if m and (m.group(2) == "info" or m.group(2) in METHODS):
            api, method = m.group(1), m.group(2)
        elif path == "/oauth2/token":
            api, method = "oauth2", OAUTH2_TOKEN
        else:
            self.log.append({"seq": len(self.log) + 1, "api": None, "method": path,
                             "http_method": request.method, "credentialID": None, "hashes": 0,
                             "numSignatures": None, "status": 404, "error": "not_found",
                             "fault": False, "dropped": False})
            return JSONResponse({"error": "not_found", "error_description": f"Unknown path {path}"},
                                status_code=404)
        probe = request.headers.get(PROBE_HEADER) is not None
        entry: dict[str, Any] = {"seq": len(self.log) + 1, "api": api, "method": method,
                                 "http_method": request.method, "credentialID": None, "hashes": 0,
                                 "numSignatures": None, "status": None, "error": None,
                                 "fault": False, "dropped": False}
        if not probe:  # the readiness probe of CscServer.start() is not a client's request
            self.log.append(entry)
        if request.method != "POST":
            entry["status"] = 405
            return JSONResponse({"error": "invalid_request",
                                 "error_description": f"Method {request.method} not allowed"},
                                status_code=405, headers={"Allow": "POST"})
        try:
            raw = await request.body()
            if self._take_fault(method):
                entry["fault"] = True
                f = self.faults
                raise ApiError(f.fail_status, f.fail_error or (
                    "server_error" if f.fail_status >= 500 else "invalid_request"), "Injected fault")
            if api == "oauth2":
                result = self._oauth2_token(request, raw)
                response: Response = JSONResponse(result, headers={"Cache-Control": "no-store",
                                                                   "Pragma": "no-cache"})
            else:
                body_error: ApiError | None = None
                try:
                    body = self._json_body(raw)
                except ApiError as e:
                    body, body_error = {}, e
                entry["credentialID"] = body.get("credentialID") if isinstance(
                    body.get("credentialID"), str) else None
                hashes = body.get("hashes" if api == "v2" else "hash")
                entry["hashes"] = len(hashes) if isinstance(hashes, list) else 0
                if isinstance(body.get("numSignatures"), int):
                    entry["numSignatures"] = body["numSignatures"]
                user = None if method in ("info", "auth/login") else self._bearer(request)
                if body_error is not None:
                    raise body_error
                unknown = sorted(set(body) - _ALLOWED[(api, method)])
                if unknown:
                    raise bad_request(invalid(unknown[0]))
                if method == "signatures/signHash" and self._drop_due():
                    entry["dropped"] = True
                    entry["status"] = 0
                    self.faults.drop_after = None
                    if self.faults.drop_consumes:
                        with contextlib.suppress(ApiError):
                            self._dispatch(api, method, request, body, user)
                    await self._drop_connection(scope)
                    return None
                result = self._dispatch(api, method, request, body, user)
                response = Response(status_code=204) if result is None else JSONResponse(result)
        except ApiError as e:
            entry["error"] = e.error
            entry["error_description"] = e.description
            response = e.response()
        entry["status"] = response.status_code
        return response

    def _dispatch(self, api: str, method: str, request: Request, body: dict[str, Any],
                  user: str | None) -> dict[str, Any] | None:
        if method == "info":
            return self._info(api, request, body)
        if method == "auth/login":
            return self._login(api, request, body)
        assert user is not None
        if method == "auth/revoke":
            self._revoke(user, body)
            return None
        if method == "credentials/list":
            return self._list(api, user, body)
        if method == "credentials/info":
            return self._credential_info(api, self._own_credential(user, body), body)
        if method == "credentials/authorize":
            return self._authorize(api, user, body)
        if method == "signatures/signHash":
            return self._sign_hash(api, user, body)
        raise ApiError(404, "not_found", f"Unknown method {method}")  # pragma: no cover

    # --- faults ------------------------------------------------------------------------------

    def _take_fault(self, method: str) -> bool:
        f = self.faults
        if f.fail_next <= 0 or (f.fail_methods is not None and method not in f.fail_methods):
            return False
        f.fail_next -= 1
        return True

    def _drop_due(self) -> bool:
        return self.faults.drop_after is not None and self.faults.drop_after <= 0

    def _count_signatures(self, n: int) -> None:
        self.signatures_made += n
        if self.faults.drop_after is not None:
            self.faults.drop_after -= n

    async def _drop_connection(self, scope: dict[str, Any]) -> None:
        """Close this request's TCP connection without an HTTP answer.

        The ASGI interface has no way to do it (an exception before the response makes uvicorn
        answer 500), so the uvicorn protocol object that owns the connection is found by the
        client address and its transport aborted; uvicorn then sees a disconnected client and
        sends nothing.
        """
        client = tuple(scope.get("client") or ())
        state = getattr(self.server, "server_state", None)
        for proto in list(getattr(state, "connections", ())):
            if getattr(proto, "client", None) == client:
                proto.transport.abort()
                break
        else:  # pragma: no cover - the connection is always there while its request runs
            raise RuntimeError(f"connection of {client} not found: cannot drop it")
        for _ in range(3):
            await asyncio.sleep(0)

    # --- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _json_body(raw: bytes) -> dict[str, Any]:
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw, object_pairs_hook=_no_duplicates)
        except (ValueError, UnicodeDecodeError):
            raise bad_request("Malformed JSON request body") from None
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object")
        return body

    def _bearer(self, request: Request) -> str:
        challenge = {"WWW-Authenticate": 'Bearer realm="csc"'}
        header = request.headers.get("authorization")
        if header is None:
            raise ApiError(401, "invalid_token", "Missing access token", challenge)
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "invalid_token", "Malformed authorization header", challenge)
        token = self.tokens.get(value.strip())
        if token is None:
            raise ApiError(401, "invalid_token", "The access token is not valid", challenge)
        if time.monotonic() >= token.expires_at:
            raise ApiError(401, "invalid_token", "The access token is expired", challenge)
        return token.user_id

    def _issue_token(self, user: str, refresh: str | None = None) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = _Token(user, time.monotonic() + self.token_ttl_s, refresh)
        return {"access_token": token, "expires_in": int(self.token_ttl_s)}

    @staticmethod
    def _opt(body: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
        if name not in body:
            return default
        value = body[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise bad_request(invalid(name))
        return value

    @staticmethod
    def _req_str(body: Mapping[str, Any], name: str) -> str:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise bad_request(missing("string", name))
        return value

    def _own_credential(self, user: str, body: Mapping[str, Any]) -> _Credential:
        cid = self._req_str(body, "credentialID")
        cred = self.credentials.get(cid)
        if cred is None or cred.user_id != user:
            raise bad_request(E_INVALID_CREDENTIAL)
        return cred

    @staticmethod
    def _check_common(body: Mapping[str, Any]) -> None:
        for name in ("clientData", "lang"):
            if name in body and not isinstance(body[name], str):
                raise bad_request(invalid(name))

    @staticmethod
    def _decode_hashes(values: Any, name: str, *, required: bool) -> list[bytes] | None:
        if values is None:
            if required:
                raise bad_request(missing("array", name))
            return None
        if not isinstance(values, list):
            raise bad_request(missing("array", name))
        if not values:
            raise bad_request(E_EMPTY_HASH)
        out = []
        for v in values:
            if not isinstance(v, str):
                raise bad_request(E_BASE64_HASH)
            try:
                out.append(base64.b64decode(v, validate=True))
            except (binascii.Error, ValueError):
                raise bad_request(E_BASE64_HASH) from None
        if any(len(h) != 32 for h in out):
            raise bad_request(E_DIGEST_LENGTH)
        return out

    # --- methods -----------------------------------------------------------------------------

    def _info(self, api: str, request: Request, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check_common(body)
        out: dict[str, Any] = {
            "specs": V1_SPECS if api == "v1" else V2_SPECS,
            "name": SERVICE_NAME,
            "logo": "",
            "region": "VN",
            "lang": "vi-VN",
            "description": "Dịch vụ ký số từ xa giả lập cho bộ kiểm thử HSĐT (CSC API)",
            "authType": ["basic"] if api == "v1" else ["basic", "oauth2client"],
            "methods": list(METHODS),
        }
        if api == "v2":
            out["oauth2"] = str(request.base_url).rstrip("/")
            out["asynchronousOperationMode"] = False
            out["signAlgorithms"] = {"algos": [RSA_ENCRYPTION, SHA256_WITH_RSA, ECDSA_WITH_SHA256]}
            out["signature_formats"] = {"formats": []}
            out["conformance_levels"] = []
        return out

    def _login(self, api: str, request: Request, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check_common(body)
        remember = self._opt(body, "rememberMe", bool, False)
        if "refresh_token" in body:
            refresh = body["refresh_token"]
            if not isinstance(refresh, str):
                raise bad_request("Invalid string parameter: refresh_token")
            user = self.refresh_tokens.get(refresh)
            if user is None:
                raise bad_request("Invalid refresh_token")
            return self._issue_token(user, refresh) | {"refresh_token": refresh}
        header = request.headers.get("authorization")
        if header is None:
            raise ApiError(401, "invalid_request", "Missing authentication parameter",
                           {"WWW-Authenticate": 'Basic realm="csc"'})
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise ApiError(401, "invalid_request", "Malformed authentication parameter",
                           {"WWW-Authenticate": 'Basic realm="csc"'})
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise ApiError(401, "invalid_request", "Malformed authentication parameter",
                           {"WWW-Authenticate": 'Basic realm="csc"'}) from None
        user, sep, password = decoded.partition(":")
        if not sep or not user:
            raise bad_request("Malformed username-password")
        if self.users.get(user) is None or not secrets.compare_digest(
                self.users[user].encode(), password.encode()):
            raise bad_request(E_AUTHENTICATION, "authentication_error")
        refresh = None
        if remember:
            refresh = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = user
        out = self._issue_token(user, refresh)
        if refresh:
            out["refresh_token"] = refresh
        return out

    def _revoke(self, user: str, body: Mapping[str, Any]) -> None:
        self._check_common(body)
        token = self._req_str(body, "token")
        hint = self._opt(body, "token_type_hint", str)
        if hint is not None and hint not in ("access_token", "refresh_token"):
            raise bad_request(invalid("token_type_hint"))
        if token in self.tokens and self.tokens[token].user_id == user:
            del self.tokens[token]
        elif self.refresh_tokens.get(token) == user:
            del self.refresh_tokens[token]
            for t in [t for t, v in self.tokens.items() if v.refresh == token]:
                del self.tokens[t]
        # RFC 7009: an unknown token is not an error.

    def _list(self, api: str, user: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check_common(body)
        user_id = self._opt(body, "userID", str)
        if user_id is not None and user_id != user:
            raise bad_request(invalid("userID"))
        max_results = self._opt(body, "maxResults", int)
        if max_results is not None and max_results < 1:
            raise bad_request(invalid("maxResults"))
        page_token = self._opt(body, "pageToken", str)
        start = 0
        if page_token is not None:
            m = re.fullmatch(r"p(\d+)", page_token)
            if m is None:
                raise bad_request(invalid("pageToken"))
            start = int(m.group(1))
        options = self._info_options(body, api) if api == "v2" else None
        want_info = bool(self._opt(body, "credentialInfo", bool, False))
        only_valid = bool(self._opt(body, "onlyValid", bool, False))
        creds = [c for c in self.credentials.values() if c.user_id == user]
        if only_valid:
            creds = [c for c in creds if c.usable]
        end = len(creds) if max_results is None else start + max_results
        page = creds[start:end]
        out: dict[str, Any] = {"credentialIDs": [c.credential_id for c in page]}
        if end < len(creds):
            out["nextPageToken"] = f"p{end}"
        if want_info and options is not None:
            out["credentialInfos"] = [{"credentialID": c.credential_id} | self._describe(api, c, *options)
                                      for c in page]
        if only_valid:
            out["onlyValid"] = True
        return out

    def _info_options(self, body: Mapping[str, Any], api: str) -> tuple[str, bool, bool]:
        certificates = self._opt(body, "certificates", str, "single")
        if certificates not in ("none", "single", "chain"):
            raise bad_request(invalid("certificates"))
        return (certificates, bool(self._opt(body, "certInfo", bool, False)),
                bool(self._opt(body, "authInfo", bool, False)))

    def _credential_info(self, api: str, cred: _Credential, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check_common(body)
        return self._describe(api, cred, *self._info_options(body, api))

    def _describe(self, api: str, cred: _Credential, certificates: str, cert_info: bool,
                  auth_info: bool) -> dict[str, Any]:
        key: dict[str, Any] = {"status": cred.status, "algo": cred.algos, "len": cred.key_len}
        if cred.curve_oid:
            key["curve"] = cred.curve_oid
        cert: dict[str, Any] = {"status": cred.cert_status()}
        if certificates != "none":
            certs = cred.certificates if certificates == "chain" else cred.certificates[:1]
            cert["certificates"] = [_b64(c) for c in certs]
        if cert_info:
            c = cred.cert
            assert c is not None
            cert |= {"issuerDN": c.issuer.rfc4514_string(), "serialNumber": format(c.serial_number, "X"),
                     "subjectDN": c.subject.rfc4514_string(),
                     "validFrom": _gentime(c.not_valid_before_utc),
                     "validTo": _gentime(c.not_valid_after_utc)}
        out: dict[str, Any] = {"key": key, "cert": cert}
        if cred.description:
            out["description"] = cred.description
        pin_format = "N" if cred.pin.isdigit() else "A"
        otp_format = "N" if (cred.otp or "0").isdigit() else "A"
        if api == "v1":
            out["authMode"] = "explicit"
            if auth_info:
                out["PIN"] = {"presence": "true", "format": pin_format, "label": "PIN",
                              "description": "Mã PIN của khoá ký"}
                if cred.otp is not None:
                    out["OTP"] = {"presence": "true", "type": "offline", "format": otp_format,
                                  "label": "OTP", "ID": "hsdt-test-otp", "provider": SERVICE_NAME,
                                  "description": "Mã OTP"}
                else:
                    out["OTP"] = {"presence": "false"}
        else:
            auth: dict[str, Any] = {"mode": "explicit"}
            if auth_info:
                objects = [{"type": "Password", "id": "PIN", "format": pin_format, "label": "PIN",
                            "description": "Mã PIN của khoá ký"}]
                if cred.otp is not None:
                    objects.append({"type": "Password", "id": "OTP", "format": otp_format,
                                    "label": "OTP", "description": "Mã OTP"})
                auth["expression"] = "PIN AND OTP" if cred.otp is not None else "PIN"
                auth["objects"] = objects
            out["auth"] = auth
        out["SCAL"] = cred.scal
        out["multisign"] = cred.multisign
        out["lang"] = "vi-VN"
        return out

    def _authorize(self, api: str, user: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check_common(body)
        cred = self._own_credential(user, body)
        if cred.status != "enabled":
            raise bad_request(E_KEY_DISABLED)
        num = body.get("numSignatures")
        if not isinstance(num, int) or isinstance(num, bool):
            raise bad_request(missing("integer", "numSignatures"))
        if num < 1:
            raise bad_request(E_NUMSIG_VALUE)
        if num > cred.multisign:
            raise bad_request(E_NUMSIG_TOO_HIGH)
        hash_name = "hash" if api == "v1" else "hashes"
        hashes = self._decode_hashes(body.get(hash_name), hash_name, required=cred.scal == "2")
        if hashes is not None and len(hashes) != num:
            raise bad_request(invalid(hash_name))
        if api == "v2" and hashes is not None:
            algo = body.get("hashAlgorithmOID")
            if not isinstance(algo, str):
                raise bad_request(missing("string", "hashAlgorithmOID"))
            if algo != SHA256_OID:
                raise bad_request(invalid("hashAlgorithmOID"))
        elif api == "v2" and "hashAlgorithmOID" in body:
            raise bad_request(invalid("hashAlgorithmOID"))
        description = self._opt(body, "description", str)
        if description is not None and len(description) > 500:
            raise bad_request(invalid("description"))
        pin, otp = self._auth_values(api, body)
        if pin is None:
            raise bad_request(missing("string", "PIN"))
        if not secrets.compare_digest(pin.encode(), cred.pin.encode()):
            raise bad_request(E_PIN, "invalid_pin")
        if cred.otp is not None and (otp is None or not secrets.compare_digest(otp.encode(),
                                                                                cred.otp.encode())):
            raise bad_request(E_OTP, "invalid_otp")
        sad = secrets.token_urlsafe(32)
        self.sads[sad] = _Sad(cred.credential_id, user, num, Counter(hashes) if hashes else None,
                              time.monotonic() + self.sad_ttl_s)
        return {"SAD": sad, "expiresIn": int(self.sad_ttl_s)}

    def _auth_values(self, api: str, body: Mapping[str, Any]) -> tuple[str | None, str | None]:
        if api == "v1":
            values: dict[str, str | None] = {}
            for name in ("PIN", "OTP"):
                v = body.get(name)
                if v is not None and not isinstance(v, str):
                    raise bad_request(invalid(name))
                values[name] = v
            return values["PIN"], values["OTP"]
        data = body.get("authData")
        if not isinstance(data, list):
            raise bad_request(missing("array", "authData"))
        found: dict[str, str] = {}
        for item in data:
            if (not isinstance(item, dict) or set(item) != {"id", "value"}
                    or not isinstance(item["id"], str) or not isinstance(item["value"], str)
                    or item["id"] not in ("PIN", "OTP") or item["id"] in found):
                raise bad_request(invalid("authData"))
            found[item["id"]] = item["value"]
        if "PIN" not in found:
            raise bad_request(E_PIN, "invalid_pin")
        return found["PIN"], found.get("OTP")

    def _sign_hash(self, api: str, user: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check_common(body)
        cred = self._own_credential(user, body)
        sad_value = self._req_str(body, "SAD")
        sad = self.sads.get(sad_value)
        if sad is None or sad.credential_id != cred.credential_id or sad.user_id != user:
            raise bad_request(E_INVALID_SAD)
        if time.monotonic() >= sad.expires_at:
            raise bad_request(E_SAD_EXPIRED)
        hash_name = "hash" if api == "v1" else "hashes"
        hashes = self._decode_hashes(body.get(hash_name), hash_name, required=True)
        assert hashes is not None
        sign_algo = body.get("signAlgo")
        if not isinstance(sign_algo, str):
            raise bad_request(missing("string", "signAlgo"))
        if sign_algo not in cred.algos:
            raise bad_request(invalid("signAlgo"))
        if "signAlgoParams" in body:
            raise bad_request(invalid("signAlgoParams"))  # only RSASSA-PSS has parameters
        algo_name = "hashAlgo" if api == "v1" else "hashAlgorithmOID"
        hash_algo = body.get(algo_name)
        if sign_algo in (RSA_ENCRYPTION, EC_PUBLIC_KEY) and not isinstance(hash_algo, str):
            raise bad_request(missing("string", algo_name))
        if algo_name in body and hash_algo != SHA256_OID:
            raise bad_request(invalid(algo_name))
        if api == "v2":
            mode = self._opt(body, "operationMode", str, "S")
            if mode != "S":
                raise bad_request(invalid("operationMode"))  # asynchronous mode not offered
            for name in ("validity_period", "response_uri"):
                if name in body:
                    raise bad_request(invalid(name))
        if cred.status != "enabled":
            raise bad_request(E_KEY_DISABLED)
        wanted = Counter(hashes)
        if len(hashes) > sad.remaining or (
                sad.hashes is not None and any(sad.hashes[h] < n for h, n in wanted.items())):
            raise bad_request(E_HASH_NOT_AUTHORIZED)
        if self.signer is None:  # pragma: no cover
            raise ApiError(500, "server_error", "No signing token")
        signatures = [self.signer.sign(cred, h) for h in hashes]
        sad.remaining -= len(hashes)
        if sad.hashes is not None:
            sad.hashes -= wanted
        if sad.remaining <= 0:
            del self.sads[sad_value]  # the spec: invalidated once every signature is made
        self._count_signatures(len(signatures))
        return {"signatures": [_b64(s) for s in signatures]}

    def _oauth2_token(self, request: Request, raw: bytes) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise bad_request("Content-Type must be application/x-www-form-urlencoded")
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
        except (ValueError, UnicodeDecodeError):
            raise bad_request("Malformed form body") from None
        form: dict[str, str] = {}
        for k, v in pairs:
            if k in form:
                raise bad_request(f"Parameter {k} is repeated")
            form[k] = v
        grant = form.get("grant_type")
        if not grant:
            raise bad_request("Missing parameter grant_type")
        if grant != "client_credentials":
            raise bad_request(f"Unsupported grant_type {grant}", "unsupported_grant_type")
        header = request.headers.get("authorization")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if header is not None:
            if client_id is not None and secret is not None:
                raise bad_request("More than one client authentication method")
            scheme, _, value = header.partition(" ")
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                decoded = ""
            if scheme.lower() != "basic" or ":" not in decoded:
                raise ApiError(401, "invalid_client", "Malformed client authentication",
                               {"WWW-Authenticate": 'Basic realm="csc"'})
            client_id, _, secret = decoded.partition(":")
        if not client_id or secret is None:
            raise ApiError(401, "invalid_client", "Client authentication failed",
                           {"WWW-Authenticate": 'Basic realm="csc"'})
        if self.users.get(client_id) is None or not secrets.compare_digest(
                self.users[client_id].encode(), secret.encode()):
            raise ApiError(401, "invalid_client", "Client authentication failed",
                           {"WWW-Authenticate": 'Basic realm="csc"'})
        scope = form.get("scope")
        if scope is not None and scope != "service":
            raise bad_request(f"Invalid scope {scope}", "invalid_scope")
        return self._issue_token(client_id) | {"token_type": "Bearer", "scope": "service"}

    # --- /_test/ -----------------------------------------------------------------------------

    async def _test_endpoint(self, request: Request, name: str) -> Response:
        if name == "log":
            if request.method != "GET":
                return JSONResponse({"error": "method_not_allowed"}, status_code=405,
                                    headers={"Allow": "GET"})
            return JSONResponse(self.log)
        if name not in ("faults", "expire_sads", "expire_tokens", "reset", "credential_status",
                        "settings"):
            return JSONResponse({"error": "not_found"}, status_code=404)
        if request.method != "POST":
            return JSONResponse({"error": "method_not_allowed"}, status_code=405,
                                headers={"Allow": "POST"})
        raw = await request.body()
        body = json.loads(raw) if raw.strip() else {}
        now = time.monotonic()
        if name == "faults":
            f = self.faults
            if "fail_next" in body:
                f.fail_next = int(body["fail_next"])
                f.fail_status = int(body.get("status", 500))
                methods = body.get("methods")
                f.fail_methods = frozenset(methods) if methods else None
                f.fail_error = body.get("error")
            if "drop_after_signatures" in body:
                k = body["drop_after_signatures"]
                f.drop_after = None if k is None else int(k)
                f.drop_consumes = bool(body.get("drop_consumes", False))
        elif name == "expire_sads":
            for sad in self.sads.values():
                sad.expires_at = now - 1
        elif name == "expire_tokens":
            for token in self.tokens.values():
                token.expires_at = now - 1
        elif name == "reset":
            self.reset()
        elif name == "credential_status":
            cred = self.credentials.get(body.get("credentialID", ""))
            if cred is None or body.get("status") not in ("enabled", "disabled"):
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            cred.status = body["status"]
        elif name == "settings":
            if "sad_ttl_s" in body:
                self.sad_ttl_s = float(body["sad_ttl_s"])
            if "token_ttl_s" in body:
                self.token_ttl_s = float(body["token_ttl_s"])
        return JSONResponse({"ok": True, "signatures_made": self.signatures_made,
                             "live_sads": len(self.sads), "faults": {
                                 "fail_next": self.faults.fail_next,
                                 "drop_after": self.faults.drop_after}})


def _exit_with_parent() -> None:
    """SIGTERM ourselves when the process that started us is gone (a killed pytest)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(config_path: Path, port: int, host: str = "127.0.0.1", *, exit_with_parent: bool = False
          ) -> None:
    """Run the server in this process until SIGTERM/SIGINT."""
    import uvicorn

    if exit_with_parent:
        _exit_with_parent()
    config = json.loads(config_path.read_text("utf-8"))
    if config.get("softhsm2_conf"):
        os.environ["SOFTHSM2_CONF"] = config["softhsm2_conf"]  # this process only
    signer = _Signer(config["pkcs11_lib"], config.get("token_label", CSC_TOKEN_LABEL),
                     config.get("user_pin", CSC_USER_PIN))
    service = CscService(config, signer)
    server = uvicorn.Server(uvicorn.Config(
        service, host=host, port=port, http="h11", lifespan="off", log_level="warning",
        access_log=False, timeout_graceful_shutdown=2))
    service.server = server
    try:
        server.run()
    finally:
        signer.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.remote.csc_double",
                                     description="A strict CSC API test server (v1 and v2).")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop when the parent process goes away (used by running_csc)")
    args = parser.parse_args(argv)
    serve(args.config, args.port, args.host, exit_with_parent=args.exit_with_parent)


# --------------------------------------------------------------------------------------------
# Test side: CredentialSpec, running_csc, CscServer
# --------------------------------------------------------------------------------------------

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CertLike = bytes | asn1_x509.Certificate | cx509.Certificate


class CscServerError(RuntimeError):
    """The CSC double could not be prepared or started (the message says what and why)."""


@dataclass(frozen=True)
class P12Key:
    """A private key in a PKCS#12 file (e.g. ``testpki.Identity.p12_path``)."""

    path: Path
    passphrase: bytes | str | None


KeySource = P12Key | tuple[Path | str, bytes | str | None] | PrivateKey


@dataclass(kw_only=True)
class CredentialSpec:
    """One CSC credential of the double (all fields by keyword).

    ``cert``/``chain`` default to what the PKCS#12 file holds when ``key`` is one; ``chain``
    is the issuers (end entity excluded), returned by ``credentials/info`` with
    ``certificates="chain"``. ``otp`` is a fixed "offline" OTP (``None``: no OTP asked).
    ``multisign`` overrides :func:`running_csc`'s; ``scal="2"`` makes the hash list mandatory
    in ``credentials/authorize``.
    """

    credential_id: str
    user_id: str
    password: str
    pin: str
    key: KeySource
    otp: str | None = None
    cert: CertLike | None = None
    chain: Sequence[CertLike] | None = None
    status: Literal["enabled", "disabled"] = "enabled"
    multisign: int | None = None
    scal: Literal["1", "2"] = "1"
    description: str | None = None

    @classmethod
    def from_identity(cls, identity: Any, *, credential_id: str | None = None, user_id: str,
                      password: str, pin: str, otp: str | None = None,
                      status: Literal["enabled", "disabled"] = "enabled",
                      multisign: int | None = None, scal: Literal["1", "2"] = "1") -> CredentialSpec:
        """From a :class:`hsdt.signing.testpki.Identity` with a PKCS#12 file."""
        from hsdt.signing import testpki

        if identity.p12_path is None:
            raise CscServerError(f"identity {identity.name} has no PKCS#12 file (its key is in the "
                                 "test PKI's token): the CSC double cannot import it")
        return cls(credential_id=credential_id or identity.name, user_id=user_id, password=password,
                   pin=pin, otp=otp, key=P12Key(identity.p12_path, testpki.SOFTWARE_P12_PASSPHRASE),
                   cert=identity.cert, chain=list(identity.chain), status=status,
                   multisign=multisign, scal=scal)


def _cert_der(c: CertLike) -> bytes:
    if isinstance(c, bytes):
        return c
    if isinstance(c, asn1_x509.Certificate):
        return bytes(c.dump())
    if isinstance(c, cx509.Certificate):
        return c.public_bytes(serialization.Encoding.DER)
    raise TypeError(f"not a certificate: {type(c).__name__}")


def _load_key(spec: CredentialSpec) -> tuple[PrivateKey, list[bytes]]:
    """The private key, and [cert, *chain] from the PKCS#12 file when there is one."""
    source = spec.key
    if isinstance(source, tuple):
        source = P12Key(Path(source[0]), source[1])
    if isinstance(source, P12Key):
        pw = source.passphrase.encode() if isinstance(source.passphrase, str) else source.passphrase
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(Path(source.path).read_bytes(), pw)
        except (OSError, ValueError) as e:
            raise CscServerError(f"{spec.credential_id}: cannot read PKCS#12 {source.path}: {e}") from e
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise CscServerError(f"{spec.credential_id}: PKCS#12 has no RSA/EC private key")
        certs = [] if cert is None else [cert.public_bytes(serialization.Encoding.DER)]
        certs += [c.public_bytes(serialization.Encoding.DER) for c in extra or []]
        return key, certs
    if isinstance(source, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return source, []
    raise CscServerError(f"{spec.credential_id}: unsupported key source {type(source).__name__}")


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CscServer:
    """A running CSC double (made by :func:`running_csc` / :func:`start_csc`)."""

    workdir: Path
    config_path: Path
    port: int
    credentials: list[CredentialSpec]
    env: dict[str, str] = field(repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    startup_timeout_s: float = 30.0

    # --- addresses ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the provider URL a client adds ``/csc/v1`` to."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1_url(self) -> str:
        return f"{self.base_url}/csc/v1"

    @property
    def v2_url(self) -> str:
        return f"{self.base_url}/csc/v2"

    @property
    def oauth2_token_url(self) -> str:
        return f"{self.base_url}/oauth2/token"

    def url(self, method: str, version: int = 1) -> str:
        """Full URL of a CSC method, e.g. ``url("signatures/signHash", 2)``."""
        return f"{self.base_url}/csc/v{version}/{method}"

    @property
    def log_path(self) -> Path:
        """The server process's stdout/stderr."""
        return self.workdir / "server.log"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        cmd = [sys.executable, "-m", "tests.remote.csc_double", "--config", str(self.config_path),
               "--port", str(self.port), "--exit-with-parent"]
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self.process.poll() is not None:
                raise CscServerError(
                    f"the CSC double exited with {self.process.returncode} while starting on port "
                    f"{self.port}: {self._log_tail()}")
            try:
                r = httpx.post(self.url("info"), json={}, headers={PROBE_HEADER: "1"}, timeout=2.0)
                if r.status_code == 200 and r.json().get("name") == SERVICE_NAME:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise CscServerError(f"the CSC double did not answer /csc/v1/info within "
                                     f"{self.startup_timeout_s:.0f} s: {self._log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); state is lost, the token stays."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL, as a crash would (no graceful shutdown)."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same port with the same token: tokens, SADs, faults and
        the log are gone, as after a provider's restart."""
        self.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.start()
                return
            except CscServerError:
                if time.monotonic() > deadline or "address already in use" not in self._log_tail().lower():
                    raise
                time.sleep(0.2)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")[-3000:].strip() or "(no output)"
        except OSError:
            return "(no log)"

    # --- observability and faults -------------------------------------------------------------

    def _test(self, name: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.post(f"{self.base_url}/_test/{name}", json=dict(body or {}), timeout=10)
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def log(self) -> list[dict[str, Any]]:
        """Every CSC/OAuth2 request handled, oldest first. Each entry: ``seq``, ``api`` ("v1",
        "v2", "oauth2"), ``method`` ("signatures/signHash"…), ``http_method``, ``credentialID``,
        ``hashes`` (how many hashes the body carried), ``numSignatures``, ``status`` (HTTP; 0 for
        a dropped connection), ``error``/``error_description``, ``fault``, ``dropped``."""
        r = httpx.get(f"{self.base_url}/_test/log", timeout=10)
        r.raise_for_status()
        entries: list[dict[str, Any]] = r.json()
        return entries

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The log entries of one method, e.g. ``calls("credentials/authorize")``."""
        return [e for e in self.log() if e["method"] == method]

    def fail_next(self, n: int, status: int = 500, methods: Sequence[str] | None = None,
                  error: str | None = None) -> None:
        """Answer the next ``n`` requests (of ``methods``, e.g. ``["signatures/signHash"]``;
        default all CSC/OAuth2 methods) with ``status`` and ``{"error": error or "server_error"
        (5xx) / "invalid_request", "error_description": "Injected fault"}``, doing nothing else."""
        self._test("faults", {"fail_next": n, "status": status, "error": error,
                              "methods": list(methods) if methods else None})

    def drop_after_signatures(self, k: int | None, *, consumes: bool = False) -> None:
        """Close, without an HTTP response, the connection of the first signHash request that
        arrives once ``k`` more signatures have been produced (0: the next one). With
        ``consumes`` the request is carried out first (SAD spent) and only the answer is lost.
        ``None`` disarms."""
        self._test("faults", {"drop_after_signatures": k, "drop_consumes": consumes})

    def expire_sads(self) -> None:
        self._test("expire_sads")

    def expire_tokens(self) -> None:
        self._test("expire_tokens")

    def set_status(self, credential_id: str, status: Literal["enabled", "disabled"]) -> None:
        self._test("credential_status", {"credentialID": credential_id, "status": status})

    def settings(self, *, sad_ttl_s: float | None = None, token_ttl_s: float | None = None) -> None:
        """Change the lifetime of SADs/tokens issued from now on."""
        body: dict[str, float] = {}
        if sad_ttl_s is not None:
            body["sad_ttl_s"] = sad_ttl_s
        if token_ttl_s is not None:
            body["token_ttl_s"] = token_ttl_s
        self._test("settings", body)

    def reset(self) -> None:
        """Back to the initial state: no tokens, SADs, faults or log; statuses and TTLs as
        configured."""
        self._test("reset")


def _run_util(util: str, args: list[str], env: Mapping[str, str], what: str) -> None:
    proc = subprocess.run([util, *args], env=dict(env), capture_output=True, text=True, timeout=60,
                          check=False)
    if proc.returncode != 0:
        raise CscServerError(f"softhsm2-util {what} failed ({proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()}")


def start_csc(tmp_dir: Path, credentials: Sequence[CredentialSpec], *, sad_ttl_s: float = 300,
              token_ttl_s: float = 3600, multisign: int = 100, pkcs11_lib: str | None = None,
              port: int | None = None) -> CscServer:
    """Prepare a private SoftHSM2 token with the credentials' keys and start the double.

    The caller stops it (:meth:`CscServer.stop`); :func:`running_csc` does that for you.
    """
    from hsdt.signing.testpki import default_pkcs11_lib

    lib = pkcs11_lib or default_pkcs11_lib()
    if not Path(lib).is_file():
        raise CscServerError(f"SoftHSM2 PKCS#11 module not found at {lib} (apt-get install softhsm2)")
    util = shutil.which("softhsm2-util")
    if util is None:
        raise CscServerError("softhsm2-util not found (apt-get install softhsm2)")
    specs = list(credentials)
    if not specs:
        raise CscServerError("the CSC double needs at least one credential")
    ids = [s.credential_id for s in specs]
    if len(set(ids)) != len(ids):
        raise CscServerError(f"credential ids must be unique: {ids}")
    passwords: dict[str, str] = {}
    for s in specs:
        if passwords.setdefault(s.user_id, s.password) != s.password:
            raise CscServerError(f"user {s.user_id} is given two different passwords")
        if s.status not in ("enabled", "disabled"):
            raise CscServerError(f"{s.credential_id}: status must be 'enabled' or 'disabled'")

    Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="csc-", dir=tmp_dir))
    token_dir = workdir / "softhsm" / "tokens"
    token_dir.mkdir(parents=True)
    conf = workdir / "softhsm" / "softhsm2.conf"
    conf.write_text(f"# CSC test double token\ndirectories.tokendir = {token_dir}\n"
                    "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", "utf-8")
    env = dict(os.environ)
    env["SOFTHSM2_CONF"] = str(conf)  # the subprocesses' only: os.environ is not touched
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    _run_util(util, ["--init-token", "--free", "--label", CSC_TOKEN_LABEL, "--so-pin", CSC_SO_PIN,
                     "--pin", CSC_USER_PIN, "--module", lib], env, "--init-token")

    entries = []
    for index, spec in enumerate(specs, start=1):
        key, p12_certs = _load_key(spec)
        if spec.cert is not None:
            certs = [_cert_der(spec.cert)]
        elif p12_certs:
            certs = p12_certs[:1]
        else:
            raise CscServerError(f"{spec.credential_id}: no certificate (give cert=...)")
        if spec.chain is not None:
            certs += [_cert_der(c) for c in spec.chain]
        elif spec.cert is None:
            certs += p12_certs[1:]
        if _spki(cx509.load_der_x509_certificate(certs[0]).public_key()) != _spki(key.public_key()):
            raise CscServerError(f"{spec.credential_id}: the certificate does not match the private key")
        key_id = f"{index:04x}"
        pem_path = workdir / f"key-{index}.pem"
        pem_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        pem_path.chmod(0o600)
        try:
            _run_util(util, ["--import", str(pem_path), "--token", CSC_TOKEN_LABEL,
                             "--label", spec.credential_id, "--id", key_id, "--pin", CSC_USER_PIN,
                             "--module", lib], env, f"--import ({spec.credential_id})")
        finally:
            pem_path.unlink()
        entries.append({
            "credential_id": spec.credential_id, "user_id": spec.user_id, "password": spec.password,
            "pin": spec.pin, "otp": spec.otp, "status": spec.status, "multisign": spec.multisign,
            "scal": spec.scal, "description": spec.description, "key_id": key_id,
            "certificates": [_b64(c) for c in certs]})

    config = {"pkcs11_lib": lib, "softhsm2_conf": str(conf), "token_label": CSC_TOKEN_LABEL,
              "user_pin": CSC_USER_PIN, "sad_ttl_s": sad_ttl_s, "token_ttl_s": token_ttl_s,
              "multisign": multisign, "credentials": entries}
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), "utf-8")

    last: CscServerError | None = None
    for _attempt in range(3):
        server = CscServer(workdir, config_path, port or _free_port(), specs, env)
        try:
            server.start()
            return server
        except CscServerError as e:
            last = e
            if port is not None or "address already in use" not in str(e).lower():
                raise
    assert last is not None
    raise last


@contextlib.contextmanager
def running_csc(tmp_dir: Path, credentials: Sequence[CredentialSpec], *, sad_ttl_s: float = 300,
                token_ttl_s: float = 3600, multisign: int = 100, pkcs11_lib: str | None = None,
                port: int | None = None) -> Iterator[CscServer]:
    """A CSC double with its own SoftHSM2 token under ``tmp_dir``, running until the block ends."""
    server = start_csc(tmp_dir, credentials, sad_ttl_s=sad_ttl_s, token_ttl_s=token_ttl_s,
                       multisign=multisign, pkcs11_lib=pkcs11_lib, port=port)
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    main()
