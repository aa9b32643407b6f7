"""The approval provider double (``approval_double``) held to its wire contract over real HTTP.

Why: the SmartCA adapter's tests trust this double; if it drifted from the contract (auth, status
codes, signatures, callbacks, faults, restarts), they would prove nothing.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .approval_double import (
    AUTH_MESSAGE,
    EXPIRED_REASON,
    ApprovalDoubleError,
    ApprovalServer,
    ApprovalUser,
    running_approval_provider,
    verify_callback,
)

STATUS = "/v1/signatures/sign/{}/status"


@dataclass
class Accounts:
    rsa: ApprovalUser
    revoked: ApprovalUser
    """A second, revoked certificate of the same account as ``rsa``."""
    ec: ApprovalUser
    root_der: bytes


@pytest.fixture(scope="module")
def accounts(world: Any) -> Accounts:
    pki = world.pki
    people = [p for p in pki.people() if p.p12_path is not None]
    assert people, "the test PKI has no person with a software key (PKCS#12)"
    root = pki.root.dump()
    user = ApprovalUser.from_identity(people[0], user_id="001085012345", root_der=root)
    return Accounts(
        rsa=user,
        revoked=ApprovalUser.from_identity(pki.identity("revoked"), user_id=user.user_id, root_der=root,
                                           cert_status="revoked"),
        ec=ApprovalUser.from_identity(pki.identity("ec_p256_ok"), user_id="079190000001", root_der=root),
        root_der=root,
    )


def _users(a: Accounts) -> list[ApprovalUser]:
    return [a.rsa, a.revoked, a.ec]


@pytest.fixture(scope="module")
def shared(accounts: Accounts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalServer]:
    with running_approval_provider(tmp_path_factory.mktemp("approval"), _users(accounts)) as srv:
        yield srv


@pytest.fixture
def srv(shared: ApprovalServer) -> ApprovalServer:
    shared.reset()
    return shared


# --- helpers -------------------------------------------------------------------------------------


def post(srv: ApprovalServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(srv.url + path, json=body, timeout=20)


def creds(srv: ApprovalServer) -> dict[str, Any]:
    return {"sp_id": srv.sp_id, "sp_password": srv.sp_password}


def digests(n: int, salt: str = "") -> list[bytes]:
    return [hashlib.sha256(f"học bạ {salt} {i}".encode()).digest() for i in range(n)]


def sign_body(srv: ApprovalServer, user: ApprovalUser, tx_id: str, hashes_: list[bytes],
              **over: Any) -> dict[str, Any]:
    body = {**creds(srv), "user_id": user.user_id, "serial_number": user.serial_number,
            "transaction_id": tx_id, "transaction_desc": "Ký học bạ lớp 6A",
            "time_stamp": datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
            "sign_files": [{"doc_id": f"doc-{i}", "file_type": "pdf", "data_to_be_signed": h.hex(),
                            "sign_type": "hash"} for i, h in enumerate(hashes_)]}
    body.update(over)
    return body


def submit(srv: ApprovalServer, user: ApprovalUser, tx_id: str, hashes_: list[bytes]) -> dict[str, Any]:
    r = post(srv, "/v1/signatures/sign", sign_body(srv, user, tx_id, hashes_))
    assert r.status_code == 200, r.text
    return r.json()["data"]


def status(srv: ApprovalServer, tx_id: str) -> dict[str, Any]:
    r = post(srv, STATUS.format(tx_id), creds(srv))
    body = r.json()
    assert r.status_code == body["status_code"] == 200, r.text
    return body["data"]


def assert_refused(r: httpx.Response, code: int, *words: str) -> None:
    body = r.json()
    assert r.status_code == code and body["status_code"] == code, r.text
    assert body["data"] is None
    for w in words:
        assert w in body["message"], (w, body["message"])


def verify_signature(cert_der: bytes, digest: bytes, signature: bytes) -> None:
    """Raises InvalidSignature unless ``signature`` is the contract's signature of ``digest``."""
    public = x509.load_der_x509_certificate(cert_der).public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@dataclass
class Receiver:
    """A tiny callback endpoint run by the test: records every POST, answers ``status``."""

    url: str = ""
    status: int = 200
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@contextlib.contextmanager
def callback_receiver(status: int = 200) -> Iterator[Receiver]:
    rec = Receiver(status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rec.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(rec.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/smartca/callback"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def check_callback(srv: ApprovalServer, headers: dict[str, str], body: bytes, tx: dict[str, Any],
                   status_: str) -> dict[str, Any]:
    """An independent check of one delivered callback: compact JSON, fields, fresh HMAC."""
    event = json.loads(body)
    assert body == json.dumps(event, separators=(",", ":")).encode()
    assert set(event) == {"event_id", "transaction_id", "tran_code", "status", "issued_at"}
    assert (event["transaction_id"], event["tran_code"], event["status"]) == (
        tx["transaction_id"], tx["tran_code"], status_)
    assert len(event["event_id"]) == 32 and int(event["event_id"], 16) >= 0
    assert abs(datetime.fromisoformat(event["issued_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    ts = headers["x-callback-timestamp"]
    assert abs(int(ts) - time.time()) < 60
    mac = hmac.new(srv.callback_secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-callback-signature"] == "sha256=" + mac
    assert headers["content-type"] == "application/json"
    return event


# --- auth and request checks ---------------------------------------------------------------------


def test_wrong_credentials_are_refused_with_401(srv: ApprovalServer, accounts: Accounts) -> None:
    refusal = {"status_code": 401, "message": AUTH_MESSAGE, "data": None}
    for path, extra in [("/v1/credentials/get_certificate", {"user_id": accounts.rsa.user_id}),
                        ("/v1/signatures/sign", {}), (STATUS.format("abc"), {})]:
        for wrong in [{"sp_password": "sai"}, {"sp_id": "khac"}]:
            r = post(srv, path, {**creds(srv), **extra, **wrong})
            assert (r.status_code, r.json()) == (401, refusal), (path, wrong)
    assert srv.transactions() == []
    assert [e["status_code"] for e in srv.requests()] == [401] * 6


def test_missing_ill_typed_and_unknown_fields_are_named(srv: ApprovalServer, accounts: Accounts) -> None:
    path = "/v1/credentials/get_certificate"
    assert_refused(post(srv, path, {"sp_id": srv.sp_id, "user_id": "x"}), 400, "sp_password")
    assert_refused(post(srv, path, {**creds(srv), "user_id": 12}), 400, "user_id")
    assert_refused(post(srv, path, {**creds(srv)}), 400, "user_id")
    assert_refused(post(srv, path, {**creds(srv), "user_id": "x", "extra": 1}), 400, "extra")
    r = httpx.post(srv.url + path, content=b"{not json", timeout=10)
    assert_refused(r, 400, "JSON")
    assert_refused(post(srv, "/v1/khong-co", creds(srv)), 404)


def test_get_certificate_returns_cert_chain_and_validity(srv: ApprovalServer, accounts: Accounts) -> None:
    r = post(srv, "/v1/credentials/get_certificate", {**creds(srv), "user_id": accounts.rsa.user_id})
    assert r.status_code == 200 and r.json()["message"] == "success"
    certs = {c["serial_number"]: c for c in r.json()["data"]["user_certificates"]}
    assert set(certs) == {accounts.rsa.serial_number, accounts.revoked.serial_number}
    assert certs[accounts.revoked.serial_number]["cert_status"] == "revoked"
    info = certs[accounts.rsa.serial_number]
    assert info["cert_status"] == "active"
    assert base64.b64decode(info["cert_data"]) == accounts.rsa.cert_der
    assert base64.b64decode(info["chain_data"]["ca_cert"]) == accounts.rsa.chain_der[0]
    assert base64.b64decode(info["chain_data"]["root_cert"]) == accounts.root_der
    cert = x509.load_der_x509_certificate(accounts.rsa.cert_der)
    assert datetime.fromisoformat(info["cert_valid_from"]) == cert.not_valid_before_utc
    assert datetime.fromisoformat(info["cert_valid_to"]) == cert.not_valid_after_utc

    one = post(srv, "/v1/credentials/get_certificate", {**creds(srv), "user_id": accounts.ec.user_id,
                                                        "serial_number": accounts.ec.serial_number})
    serials = [c["serial_number"] for c in one.json()["data"]["user_certificates"]]
    assert serials == [accounts.ec.serial_number]
    unknown = post(srv, "/v1/credentials/get_certificate", {**creds(srv), "user_id": "000000000000"})
    assert_refused(unknown, 404)
    wrong_serial = post(srv, "/v1/credentials/get_certificate",
                        {**creds(srv), "user_id": accounts.ec.user_id, "serial_number": "ff"})
    assert_refused(wrong_serial, 404)


def test_sign_request_is_checked_strictly(srv: ApprovalServer, accounts: Accounts) -> None:
    one = digests(1)
    base = sign_body(srv, accounts.rsa, "tx-check", one)
    file0 = base["sign_files"][0]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"sign_files": []}, "sign_files"),
        ({"sign_files": [{**file0, "doc_id": f"d{i}"} for i in range(101)]}, "sign_files"),
        ({"sign_files": [file0, dict(file0)]}, "doc_id"),
        ({"sign_files": [{**file0, "data_to_be_signed": one[0].hex().upper()}]}, "data_to_be_signed"),
        ({"sign_files": [{**file0, "data_to_be_signed": one[0].hex()[:62]}]}, "data_to_be_signed"),
        ({"sign_files": [{**file0, "file_type": "xml"}]}, "file_type"),
        ({"sign_files": [{**file0, "sign_type": "file"}]}, "sign_type"),
        ({"sign_files": [{k: v for k, v in file0.items() if k != "doc_id"}]}, "doc_id"),
        ({"sign_files": "abc"}, "sign_files"),
        ({"transaction_id": "có dấu"}, "transaction_id"),
        ({"transaction_id": "x" * 65}, "transaction_id"),
        ({"transaction_id": ""}, "transaction_id"),
        ({"time_stamp": "2025-01-01"}, "time_stamp"),
        ({"time_stamp": "20251399000000"}, "time_stamp"),
        ({"transaction_desc": None}, "transaction_desc"),
    ]
    for over, word in cases:
        assert_refused(post(srv, "/v1/signatures/sign", {**base, **over}), 400, word)
    assert_refused(post(srv, "/v1/signatures/sign", {**base, "user_id": "000000000000"}), 404)
    assert_refused(post(srv, "/v1/signatures/sign", {**base, "serial_number": "ff"}), 404)
    revoked = sign_body(srv, accounts.revoked, "tx-revoked", one)
    assert_refused(post(srv, "/v1/signatures/sign", revoked), 400, "revoked")
    assert srv.transactions() == []
    # the limits themselves are accepted: 100 documents, a 64-character id
    many = digests(100)
    data = submit(srv, accounts.rsa, "A" * 63 + "_", many)
    assert data["transaction_id"] == "A" * 63 + "_"


# --- the transaction's life ----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["rsa", "ec"])
def test_submit_pending_then_approve_signs_every_hash(srv: ApprovalServer, accounts: Accounts,
                                                      who: str) -> None:
    user: ApprovalUser = getattr(accounts, who)
    hs = digests(3, who)
    before = datetime.now(UTC)
    data = submit(srv, user, f"tx-{who}-1", hs)
    assert data["transaction_id"] == f"tx-{who}-1" and data["tran_code"]
    expires = datetime.fromisoformat(data["expires_at"])
    assert expires.utcoffset() == timedelta(0)
    assert before + timedelta(seconds=290) < expires < datetime.now(UTC) + timedelta(seconds=310)

    pending = status(srv, f"tx-{who}-1")
    assert pending == {"transaction_id": f"tx-{who}-1", "tran_code": data["tran_code"], "status": "pending",
                       "reason": None, "signatures": None}

    srv.approve(f"tx-{who}-1", corrupt_doc_ids=["doc-2"])
    approved = status(srv, f"tx-{who}-1")
    assert approved["status"] == "approved" and approved["reason"] is None
    sigs = {s["doc_id"]: s["signature_value"] for s in approved["signatures"]}
    assert list(sigs) == ["doc-0", "doc-1", "doc-2"]
    for i in (0, 1):
        verify_signature(user.cert_der, hs[i], base64.b64decode(sigs[f"doc-{i}"]))
    with pytest.raises(InvalidSignature):  # the corrupted one, and a signature on the wrong hash
        verify_signature(user.cert_der, hs[2], base64.b64decode(sigs["doc-2"]))
    with pytest.raises(InvalidSignature):
        verify_signature(user.cert_der, hs[1], base64.b64decode(sigs["doc-0"]))
    if who == "rsa":  # PKCS#1 v1.5 over DigestInfo(SHA-256): the same as signing the data itself
        public = x509.load_der_x509_certificate(user.cert_der).public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        data0 = f"học bạ {who} 0".encode()
        public.verify(base64.b64decode(sigs["doc-0"]), data0, padding.PKCS1v15(), hashes.SHA256())

    with pytest.raises(ApprovalDoubleError, match="409"):
        srv.approve(f"tx-{who}-1")
    assert [(e["path"], e["transaction_id"], e["status_code"]) for e in srv.requests()] == [
        ("/v1/signatures/sign", f"tx-{who}-1", 200),
        (STATUS.format(f"tx-{who}-1"), f"tx-{who}-1", 200),
        (STATUS.format(f"tx-{who}-1"), f"tx-{who}-1", 200),
    ]


def test_reject_carries_the_reason(srv: ApprovalServer, accounts: Accounts) -> None:
    submit(srv, accounts.rsa, "tx-reject", digests(2))
    srv.reject("tx-reject", "Không phải hồ sơ của tôi")
    got = status(srv, "tx-reject")
    assert (got["status"], got["reason"], got["signatures"]) == ("rejected", "Không phải hồ sơ của tôi", None)
    with pytest.raises(ApprovalDoubleError, match="409"):
        srv.approve("tx-reject")
    assert_refused(post(srv, STATUS.format("khong-ton-tai"), creds(srv)), 404)


def test_forced_expiry(srv: ApprovalServer, accounts: Accounts) -> None:
    submit(srv, accounts.ec, "tx-expire", digests(1))
    srv.expire("tx-expire")
    got = status(srv, "tx-expire")
    assert (got["status"], got["reason"], got["signatures"]) == ("expired", EXPIRED_REASON, None)


def test_resubmit_is_idempotent_and_conflicts_are_409(srv: ApprovalServer, accounts: Accounts) -> None:
    hs = digests(2)
    body = sign_body(srv, accounts.rsa, "tx-idem", hs)
    first = post(srv, "/v1/signatures/sign", body)
    second = post(srv, "/v1/signatures/sign", body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(srv.transactions()) == 1
    for over in [{"sign_files": body["sign_files"][:1]}, {"transaction_desc": "khác"},
                 {"time_stamp": "20200101000000"}, {"user_id": accounts.ec.user_id,
                                                    "serial_number": accounts.ec.serial_number}]:
        assert_refused(post(srv, "/v1/signatures/sign", {**body, **over}), 409, "tx-idem")
    srv.approve("tx-idem")
    assert post(srv, "/v1/signatures/sign", body).json() == first.json()  # still the same answer
    assert status(srv, "tx-idem")["status"] == "approved"


def test_pending_transaction_expires_after_ttl_with_callback(accounts: Accounts, tmp_path: Path) -> None:
    with callback_receiver() as rec, running_approval_provider(
            tmp_path, _users(accounts), ttl_s=1.0, callback_url=rec.url) as srv:
        data = submit(srv, accounts.rsa, "tx-ttl", digests(1))
        assert status(srv, "tx-ttl")["status"] == "pending"
        # expiry is pushed by the double itself: the callback comes without any polling
        wait_for(lambda: rec.received, timeout_s=10)
        headers, body = rec.received[0]
        check_callback(srv, headers, body, data, "expired")
        assert datetime.now(UTC) >= datetime.fromisoformat(data["expires_at"])
        got = status(srv, "tx-ttl")
        assert (got["status"], got["reason"]) == ("expired", EXPIRED_REASON)
        with pytest.raises(ApprovalDoubleError, match="409"):
            srv.approve("tx-ttl")
        assert len(rec.received) == 1


# --- callbacks -----------------------------------------------------------------------------------


def test_callbacks_are_signed_and_logged(srv: ApprovalServer, accounts: Accounts) -> None:
    with callback_receiver() as rec:
        srv.set_callback_url(rec.url)
        ok = submit(srv, accounts.rsa, "tx-cb-ok", digests(1))
        no = submit(srv, accounts.ec, "tx-cb-no", digests(1))
        answer = srv.approve("tx-cb-ok")
        assert answer["callback"]["delivered"] and answer["callback"]["status_code"] == 200
        srv.reject("tx-cb-no", "Sai lớp")
        assert len(rec.received) == 2  # delivered before the control call returns
        e1 = check_callback(srv, *rec.received[0], ok, "approved")
        check_callback(srv, *rec.received[1], no, "rejected")
        assert verify_callback(srv.callback_secret, *rec.received[0])
        assert not verify_callback(srv.callback_secret, rec.received[0][0], rec.received[0][1] + b" ")
        assert not verify_callback("another secret", *rec.received[0])

        srv.resend_callback("tx-cb-ok")
        srv.resend_callback("tx-cb-ok", new_event=True)
        again = check_callback(srv, *rec.received[2], ok, "approved")
        fresh = check_callback(srv, *rec.received[3], ok, "approved")
        assert again["event_id"] == e1["event_id"] != fresh["event_id"]

        cbs = srv.callbacks()
        assert [(c["transaction_id"], c["event_status"], c["status_code"], c["delivered"]) for c in cbs] == [
            ("tx-cb-ok", "approved", 200, True), ("tx-cb-no", "rejected", 200, True),
            ("tx-cb-ok", "approved", 200, True), ("tx-cb-ok", "approved", 200, True)]

        forged = b'{"event_id":"00","transaction_id":"tx-cb-ok","status":"approved"}'
        headers = {**srv.callback_headers(forged, timestamp=1), "X-Extra": "1"}
        assert srv.send_raw_callback(forged, headers).status_code == 200
        got_headers, got_body = rec.received[4]
        assert got_body == forged and got_headers["x-callback-timestamp"] == "1"
        assert got_headers["x-extra"] == "1"
        assert len(srv.callbacks()) == 4  # client-side: the double knows nothing of it


def test_failed_callback_does_not_undo_the_approval(srv: ApprovalServer, accounts: Accounts) -> None:
    with callback_receiver(status=500) as rec:
        srv.set_callback_url(rec.url)
        submit(srv, accounts.rsa, "tx-cb-500", digests(1))
        answer = srv.approve("tx-cb-500")
        assert (answer["callback"]["status_code"], answer["callback"]["delivered"]) == (500, False)
        assert status(srv, "tx-cb-500")["status"] == "approved"
        rec.status = 204
        assert srv.resend_callback("tx-cb-500")["callback"]["delivered"]
    srv.set_callback_url(rec.url)  # the receiver is gone now: connection refused
    submit(srv, accounts.rsa, "tx-cb-down", digests(1))
    answer = srv.approve("tx-cb-down")
    assert answer["callback"]["delivered"] is False and answer["callback"]["status_code"] is None
    assert "ConnectError" in answer["callback"]["error"]
    assert status(srv, "tx-cb-down")["status"] == "approved"
    srv.set_callback_url(None)
    with pytest.raises(ApprovalDoubleError, match="409"):
        srv.resend_callback("tx-cb-down")


# --- faults and restarts -------------------------------------------------------------------------


def test_fail_next_answers_the_status_without_doing_anything(srv: ApprovalServer, accounts: Accounts) -> None:
    body = sign_body(srv, accounts.rsa, "tx-fault", digests(1))
    srv.faults(fail_next=1, status=503, paths=["/v1/signatures/sign"])
    r = post(srv, "/v1/signatures/sign", body)
    assert r.status_code == 503 and r.json()["status_code"] == 503 and r.json()["data"] is None
    assert srv.transactions() == []
    assert post(srv, "/v1/signatures/sign", body).status_code == 200

    srv.faults(fail_next=2, paths=["/v1/signatures/sign/{transaction_id}/status"])
    for _ in range(2):
        assert_refused(post(srv, STATUS.format("tx-fault"), creds(srv)), 500)
    assert status(srv, "tx-fault")["status"] == "pending"
    assert [(e["path"], e["transaction_id"], e["status_code"], e["fault"]) for e in srv.requests()] == [
        ("/v1/signatures/sign", None, 503, "fail"), ("/v1/signatures/sign", "tx-fault", 200, None),
        (STATUS.format("tx-fault"), "tx-fault", 500, "fail"),
        (STATUS.format("tx-fault"), "tx-fault", 500, "fail"),
        (STATUS.format("tx-fault"), "tx-fault", 200, None)]


def test_drop_next_closes_the_connection_without_answer(srv: ApprovalServer, accounts: Accounts) -> None:
    body = sign_body(srv, accounts.ec, "tx-drop", digests(1))
    srv.faults(drop_next=1)
    with httpx.Client(timeout=10) as client:
        with pytest.raises(httpx.TransportError):
            client.post(srv.url + "/v1/signatures/sign", json=body)
        assert srv.transactions() == []
        assert client.post(srv.url + "/v1/signatures/sign", json=body).status_code == 200
    srv.faults(drop_next=1, paths=["/v1/signatures/sign/*/status"])
    with pytest.raises(httpx.TransportError):
        post(srv, STATUS.format("tx-drop"), creds(srv))
    assert status(srv, "tx-drop")["status"] == "pending"
    assert [e["fault"] for e in srv.requests()] == ["drop", None, "drop", None]


def test_restart_keeps_transactions(accounts: Accounts, tmp_path: Path) -> None:
    with running_approval_provider(tmp_path, _users(accounts)) as srv:
        done = submit(srv, accounts.rsa, "tx-before", digests(1))
        srv.approve("tx-before")
        waiting = submit(srv, accounts.ec, "tx-waiting", digests(2))
        before = status(srv, "tx-before")
        url = srv.url
        srv.stop()
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/_test/health", timeout=2)
        srv.start()
        assert srv.url == url
        assert status(srv, "tx-before") == before
        assert status(srv, "tx-waiting")["tran_code"] == waiting["tran_code"]
        body = sign_body(srv, accounts.ec, "tx-waiting", digests(2))
        body["time_stamp"] = srv.transaction("tx-waiting")["time_stamp"]
        assert post(srv, "/v1/signatures/sign", body).json()["data"] == waiting  # idempotent across restarts
        srv.approve("tx-waiting")
        assert status(srv, "tx-waiting")["status"] == "approved"
        assert done["tran_code"] == before["tran_code"]
        assert len(srv.requests()) == 7  # the log survives too
