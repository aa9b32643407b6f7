"""Acceptance (issue 5): a class signed through approval on the teacher's phone (SmartCA's shape).

The provider is :mod:`tests.remote.approval_double`, a separate process; the service is the
real API over loopback HTTP. The batch waits in the database, so the service can restart
while the teacher has not yet answered; the callback is authenticated and replay-proof.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from api.service_world import PASSWORD, Service, serve_app
from sqlalchemy import select

from hsdt.agent import ApiClient, open_file_key, sign_value
from hsdt.api.app import create_app
from hsdt.db.models import AuditEntry
from hsdt.service.context import ServiceContext
from hsdt.signing import testpki

from .approval_double import ApprovalServer, ApprovalUser, running_approval_provider
from .remote_world import (
    STUDENTS,
    assert_signed_and_intact,
    build_class_service,
    configure,
    link,
    signed_count,
    teacher_steps,
)

SP_PASSWORD_ENV, SECRET_ENV = "HSDT_TEST_SMARTCA_SP_PASSWORD", "HSDT_TEST_SMARTCA_CALLBACK_SECRET"
TEACHERS = ("GV009", "GV010", "GV011", "GV008", "GV007")


@dataclass
class PhoneWorld:
    svc: Service
    phone: ApprovalServer
    tmp: Path
    server: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def callback_url(self) -> str:
        return f"{self.svc.url}/api/v1/remote/callback/smartca"

    def start(self) -> None:
        self.svc.url = self.server.enter_context(serve_app(self.svc.app))
        self.svc._tokens.clear()

    def restart(self) -> None:
        """Stop the server and close its context (keys, signer), then start a new service on
        the same database and files, as after a redeploy or a crash."""
        self.server.close()
        old = self.svc.ctx
        old.close()
        ctx = ServiceContext(sessions=old.sessions, trust_roots=old.trust_roots, tsa_url=old.tsa_url,
                             workspace_root=old.workspace_root, seal_keys=old.seal_keys,
                             archive_factory=old.archive_factory, archive_lock=old.archive_lock,
                             remote=old.remote)
        self.svc.ctx, self.svc.app = ctx, create_app(ctx)
        self.start()


def _account(who: str) -> str:
    return f"0790{TEACHERS.index(who) + 1:08d}"  # a citizen id number, as SmartCA accounts are


@pytest.fixture(scope="module")
def phone_world(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoneWorld]:  # type: ignore[no-untyped-def]
    pki: testpki.TestPKI = world.pki
    root = tmp_path_factory.mktemp("phone")
    svc = build_class_service(pki, root)
    users = [ApprovalUser.from_identity(pki.identity(who), user_id=_account(who), root_der=pki.root.dump())
             for who in TEACHERS]
    with running_approval_provider(root / "provider", users, ttl_s=600) as phone:
        os.environ[SP_PASSWORD_ENV], os.environ[SECRET_ENV] = phone.sp_password, phone.callback_secret
        configure(svc, {"smartca": {
            "kind": "smartca", "display_name": "VNPT SmartCA (thử)", "base_url": phone.url,
            "sp_id": phone.sp_id, "sp_password_env": SP_PASSWORD_ENV, "callback_secret_env": SECRET_ENV,
            "poll_interval_s": 0.2, "poll_max_interval_s": 1.0, "timeout_s": 20}})
        for who in TEACHERS:
            link(svc, who, "smartca", _account(who))
        w = PhoneWorld(svc, phone, root)
        try:
            w.start()
            svc.import_and_render(_bundle(svc))
            yield w
        finally:
            w.server.close()
            os.environ.pop(SP_PASSWORD_ENV, None)
            os.environ.pop(SECRET_ENV, None)
            svc.ctx.close()


def _bundle(svc: Service) -> dict[str, Any]:
    from hsdt.domain.bundles import bundle_json

    return bundle_json(svc.bundle)


def _submit(w: PhoneWorld, who: str, **body: Any) -> dict[str, Any]:
    with w.svc.client(who) as c:
        r = c.post("/api/v1/signatures/remote/approvals", json={"provider": "smartca", **body})
    assert r.status_code == 202, r.text
    out: dict[str, Any] = r.json()
    return out


def _batch(w: PhoneWorld, who: str, approval_id: str) -> dict[str, Any]:
    with w.svc.client(who) as c:
        r = c.get(f"/api/v1/signatures/remote/approvals/{approval_id}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _wait_state(w: PhoneWorld, who: str, approval_id: str, state: str, timeout: float = 120
                ) -> dict[str, Any]:
    """Ask the service (which polls the provider when a poll is due) until the batch is ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        out = _batch(w, who, approval_id)
        if out["approval_state"] == state or time.monotonic() > deadline:
            assert out["approval_state"] == state, out
            return out
        time.sleep(0.2)


def _pending(w: PhoneWorld, who: str) -> list[dict[str, Any]]:
    with w.svc.client(who) as c:
        r = c.get("/api/v1/signatures/pending")
    assert r.status_code == 200
    return list(r.json())


def test_a_class_approved_on_the_phone_after_a_restart(phone_world: PhoneWorld) -> None:
    w, who = phone_world, "GV009"
    w.phone.set_callback_url(None)
    out = _submit(w, who)
    assert out["approval_state"] == "pending" and out["pending"] == STUDENTS, out
    tx = w.phone.transaction(out["approval_id"])
    assert len(tx["sign_files"]) == STUDENTS and tx["status"] == "pending"
    waiting = _pending(w, who)
    assert len(waiting) == STUDENTS and all(p["awaiting_approval_until"] for p in waiting)
    # While the phone has not answered, the same field cannot be sent again nor prepared on a token.
    with w.svc.client(who) as c:
        again = c.post(f"/api/v1/signatures/{waiting[0]['step_id']}/prepare",
                       json={"certificate": "", "chain": []})
    assert again.status_code in (409, 422), again.text
    assert _submit(w, who)["items"] == []
    # The provider fails a poll (500s beyond the client's retries): still pending, not lost.
    w.phone.faults(fail_next=4, status=500, paths=["/v1/signatures/sign/*/status"])
    time.sleep(0.3)
    assert _batch(w, who, out["approval_id"])["approval_state"] == "pending"
    assert [r["status_code"] for r in w.phone.requests()[-4:]] == [500] * 4

    # The service restarts (the old server is gone); the teacher approves afterwards.
    old_url = w.svc.url
    w.restart()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{old_url}/healthz", timeout=2)
    w.phone.set_callback_url(w.callback_url())
    answer = w.phone.approve(out["approval_id"])
    assert answer["callback"]["status_code"] == 204, answer
    done = _wait_state(w, who, out["approval_id"], "completed")
    assert done["signed"] == STUDENTS and done["failed"] == 0, done
    assert signed_count(w.svc, who) == STUDENTS
    assert _pending(w, who) == []
    assert_signed_and_intact(w.svc, who, w.tmp)


def test_rejected_and_expired_approvals_sign_nothing_and_say_why(phone_world: PhoneWorld) -> None:
    w, who = phone_world, "GV010"
    w.phone.set_callback_url(None)  # no callback: the service finds out by polling
    out = _submit(w, who)
    w.phone.reject(out["approval_id"], "Điểm môn Tin học của em thứ ba chưa đúng")
    done = _wait_state(w, who, out["approval_id"], "rejected")
    assert done["signed"] == 0 and done["failed"] == STUDENTS
    assert signed_count(w.svc, who) == 0
    waiting = _pending(w, who)
    assert len(waiting) == STUDENTS
    assert all("Điểm môn Tin học của em thứ ba chưa đúng" in p["remote_note"] for p in waiting)
    assert all(p["awaiting_approval_until"] is None for p in waiting)

    out = _submit(w, who)  # sent again: waiting again, then the phone lets it expire
    w.phone.expire(out["approval_id"])
    done = _wait_state(w, who, out["approval_id"], "expired")
    assert done["signed"] == 0
    assert signed_count(w.svc, who) == 0
    assert all("Hết thời gian chờ xác nhận" in p["remote_note"] for p in _pending(w, who))
    with w.svc.sessions() as s:
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("remote_approval_%"))))
    assert {"remote_approval_rejected", "remote_approval_expired"} <= actions


def test_forged_and_replayed_callbacks_are_refused(phone_world: PhoneWorld) -> None:
    w, who = phone_world, "GV011"
    w.phone.set_callback_url(w.callback_url())
    # The submission's connection is dropped once: sent again under the same transaction id,
    # the provider holds one transaction, not two.
    w.phone.faults(drop_next=1, paths=["/v1/signatures/sign"])
    out = _submit(w, who)
    assert [t["transaction_id"] for t in w.phone.transactions()].count(out["approval_id"]) == 1
    approval_id = out["approval_id"]
    body = json.dumps({"event_id": "f" * 32, "transaction_id": approval_id, "tran_code": "x",
                       "status": "approved", "issued_at": "2026-11-29T00:00:00Z"},
                      separators=(",", ":")).encode()
    # Signed with the wrong secret; then a genuine signature but an hour old.
    forged = w.phone.send_raw_callback(body, w.phone.callback_headers(body, secret="không-phải-bí-mật"))
    assert forged.status_code == 401 and forged.json()["error"] == "callback_bad_signature", forged.text
    stale = w.phone.send_raw_callback(body, w.phone.callback_headers(body, timestamp=int(time.time()) - 3600))
    assert stale.status_code == 401 and stale.json()["error"] == "callback_stale", stale.text
    assert _batch(w, who, approval_id)["approval_state"] == "pending"

    # One signature comes back damaged: that record is refused, the 39 others are signed.
    step_of = {p["step_id"]: p for p in _pending(w, who)}
    tx = w.phone.transaction(approval_id)
    broken = tx["sign_files"][0]["doc_id"]
    first = w.phone.approve(approval_id, corrupt_doc_ids=[broken])
    assert first["callback"]["status_code"] == 204, first
    done = _wait_state(w, who, approval_id, "completed")
    assert done["signed"] == STUDENTS - 1 and done["failed"] == 1, done
    failed = [i for i in done["items"] if i["outcome"] == "failed"]
    assert len(failed) == 1 and failed[0]["step_id"] in step_of
    assert "không khớp" in (failed[0]["message"] or "")

    # The provider sends the same event again: refused as a replay, nothing signed twice.
    replay = w.phone.resend_callback(approval_id)
    assert replay["callback"]["status_code"] == 409, replay
    assert signed_count(w.svc, who) == STUDENTS - 1
    with w.svc.sessions() as s:
        refused = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "remote_callback",
                                                          AuditEntry.outcome == "refused")))
    assert {e.details["code"] for e in refused} >= {"callback_bad_signature", "callback_stale",
                                                    "callback_replayed"}

    # The last record goes again, alone, and the batch is complete.
    again = _submit(w, who)
    assert again["pending"] == 1
    w.phone.approve(again["approval_id"])
    _wait_state(w, who, again["approval_id"], "completed")
    assert signed_count(w.svc, who) == STUDENTS
    assert len({st.id for st in teacher_steps(w.svc, who)}) == STUDENTS
    assert_signed_and_intact(w.svc, who, w.tmp)


def test_a_record_changed_since_the_batch_was_prepared_is_refused_not_signed_stale(
        phone_world: PhoneWorld) -> None:
    """GV008 sends the class to the phone; before the approval arrives, GV003 signs one of the
    records on a token. That record's prepared signature would cut GV003's off: refused, the
    39 others land, and the refused one is simply sent again."""
    w, who = phone_world, "GV008"
    w.phone.set_callback_url(None)
    out = _submit(w, who)
    target = out["items"][0]
    with w.svc.client("GV003") as c:
        theirs = [p for p in c.get("/api/v1/signatures/pending").json()
                  if p["record_id"] == target["record_id"]]
    assert theirs
    ident = w.svc.pki.identity("GV003")
    assert ident.p12_path is not None
    key = open_file_key(ident.p12_path, testpki.SOFTWARE_P12_PASSPHRASE.decode())
    api = ApiClient(w.svc.url)
    try:
        api.sign_in(w.svc.username("GV003"), PASSWORD)
        prepared = api.prepare(theirs[0]["step_id"], key.cert, list(key.chain))
        api.complete(prepared["id"], sign_value(key, base64.b64decode(prepared["to_be_signed"])))
    finally:
        api.close()
        key.close()
    w.phone.approve(out["approval_id"])
    done = _wait_state(w, who, out["approval_id"], "completed")
    assert done["signed"] == STUDENTS - 1 and done["failed"] == 1, done
    refused = [i for i in done["items"] if i["outcome"] == "failed"]
    assert refused[0]["record_id"] == target["record_id"] and "đã thay đổi" in (refused[0]["message"] or "")
    again = _submit(w, who)
    assert again["pending"] == 1
    w.phone.approve(again["approval_id"])
    _wait_state(w, who, again["approval_id"], "completed")
    assert signed_count(w.svc, who) == STUDENTS
    assert_signed_and_intact(w.svc, who, w.tmp)


def test_the_agent_waits_for_the_phone_and_reports(phone_world: PhoneWorld) -> None:
    """``hsdt agent --provider smartca``: it sends the class, says to confirm on the phone and
    waits; the teacher confirms; the agent reports the class signed."""
    w, who = phone_world, "GV007"
    w.phone.set_callback_url(w.callback_url())
    agent = subprocess.Popen(
        [sys.executable, "-m", "hsdt.cli", "agent", "--server", w.svc.url, "--user", w.svc.username(who),
         "--password-stdin", "--provider", "smartca", "--yes"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"})
    answer: list[tuple[str, str]] = []
    talk = threading.Thread(target=lambda: answer.append(agent.communicate(f"{PASSWORD}\n", timeout=300)))
    talk.start()
    deadline = time.monotonic() + 120
    pending = []
    while not pending and time.monotonic() < deadline:
        pending = [t for t in w.phone.transactions() if t["status"] == "pending"]
        time.sleep(0.2)
    assert len(pending) == 1 and len(pending[0]["sign_files"]) == STUDENTS
    w.phone.approve(pending[0]["transaction_id"])
    talk.join(timeout=310)
    out, errs = answer[0]
    assert agent.returncode == 0, out + errs
    assert "Hãy mở ứng dụng trên điện thoại và xác nhận" in out
    assert f"Đã ký {STUDENTS} ô chữ ký qua VNPT SmartCA (thử), không có lỗi." in out
    assert signed_count(w.svc, who) == STUDENTS
