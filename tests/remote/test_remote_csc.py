"""Acceptance (issue 5): a teacher signs a whole class through a CSC provider.

The provider is :mod:`tests.remote.csc_double`, a separate process speaking CSC v1/v2 with
the keys in its own SoftHSM2 token; the service is the real API over loopback HTTP, and the
records are checked by our verifier and by poppler's ``pdfsig``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from api.service_world import PASSWORD as SERVICE_PASSWORD
from api.service_world import Service, serve_app

from hsdt.service import remote_signing
from hsdt.signing import testpki
from hsdt.signing.remote.csc import CscClient
from hsdt.signing.remote.providers import CscProviderConfig

from .csc_double import CredentialSpec, CscServer, running_csc
from .remote_world import (
    STUDENTS,
    assert_signed_and_intact,
    bind_extra_certificate,
    build_class_service,
    configure,
    link,
    signed_count,
    teacher_steps,
)

PIN, OTP, PASSWORD = "246810", "135790", "mật-khẩu-CSC"


@dataclass
class CscWorld:
    svc: Service
    csc: CscServer
    tmp: Path


def _account(who: str) -> str:
    return f"csc-{who.lower()}"


@pytest.fixture(scope="module")
def csc_world(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CscWorld]:  # type: ignore[no-untyped-def]
    pki: testpki.TestPKI = world.pki
    root = tmp_path_factory.mktemp("csc")
    svc = build_class_service(pki, root)
    creds = [CredentialSpec.from_identity(pki.identity(who), credential_id=f"{who}-key",
                                          user_id=_account(who), password=PASSWORD, pin=PIN,
                                          otp=OTP if who == "GV005" else None)
             for who in ("GV004", "GV005", "GV006", "GV007", "GV008", "GV010")]
    # GV008's account also holds: somebody else's certificate, a revoked one, a weak one.
    creds += [CredentialSpec.from_identity(pki.identity("GV009"), credential_id="GV008-foreign",
                                           user_id=_account("GV008"), password=PASSWORD, pin=PIN),
              CredentialSpec.from_identity(pki.identity("revoked"), credential_id="GV008-revoked",
                                           user_id=_account("GV008"), password=PASSWORD, pin=PIN),
              CredentialSpec.from_identity(pki.identity("weak_rsa"), credential_id="GV008-weak",
                                           user_id=_account("GV008"), password=PASSWORD, pin=PIN)]
    with running_csc(root, creds, multisign=100) as csc:
        configure(svc, {
            "mysign": {"kind": "csc", "display_name": "Viettel MySign (thử)", "base_url": csc.base_url,
                       "csc_version": 1, "timeout_s": 20},
            "mysign2": {"kind": "csc", "display_name": "CSC v2 (thử)", "base_url": csc.base_url,
                        "csc_version": 2, "timeout_s": 20},
        })
        for who in ("GV004", "GV005", "GV006", "GV008", "GV002", "GV010"):
            link(svc, who, "mysign", _account(who))
        link(svc, "GV007", "mysign2", _account("GV007"))
        # The revoked and the weak certificate are registered to GV008 (an administrator's
        # mistake the CA's revocation and the key-size rule must still catch).
        bind_extra_certificate(svc, "GV008", pki.identity("revoked"))
        bind_extra_certificate(svc, "GV008", pki.identity("weak_rsa"))
        with serve_app(svc.app) as url:
            svc.url = url
            svc.import_and_render(_bundle(svc))
            yield CscWorld(svc, csc, root)
    svc.ctx.close()


def _bundle(svc: Service) -> dict[str, object]:
    from hsdt.domain.bundles import bundle_json

    return bundle_json(svc.bundle)


def _sign(w: CscWorld, who: str, **body: object) -> tuple[int, dict[str, object]]:
    payload = {"provider": "mysign", "pin": PIN, "password": PASSWORD, **body}
    with w.svc.client(who) as c:
        r = c.post("/api/v1/signatures/remote/csc", json=payload)
    return r.status_code, r.json()


def _hash_calls(w: CscWorld) -> list[dict[str, object]]:
    return [e for e in w.csc.log() if e.get("method") in ("credentials/authorize", "signatures/signHash")]


def test_a_class_of_40_with_one_authorisation(csc_world: CscWorld) -> None:
    w = csc_world
    w.csc.reset()
    status, out = _sign(w, "GV004")
    assert status == 200, out
    assert out["signed"] == STUDENTS and out["failed"] == 0 and out["refused"] == 0, out
    assert out["authorizations"] == 1
    authorize = w.csc.calls("credentials/authorize")
    assert len(authorize) == 1 and authorize[0]["hashes"] == STUDENTS, authorize
    assert signed_count(w.svc, "GV004") == STUDENTS
    assert_signed_and_intact(w.svc, "GV004", w.tmp)
    # Nothing is left for GV004, and asking again sends nothing to the provider.
    w.csc.reset()
    status, out = _sign(w, "GV004")
    assert status == 200 and out["signed"] == 0 and out["items"] == [], out
    assert _hash_calls(w) == []


@pytest.mark.parametrize(("credential", "code"), [
    ("GV008-foreign", "cert_not_bound"),
    ("GV008-revoked", "cert_revoked"),
    ("GV008-weak", "weak_key"),
])
def test_an_unacceptable_credential_is_refused_before_any_hash_is_sent(csc_world: CscWorld, credential: str,
                                                                      code: str) -> None:
    w = csc_world
    w.csc.reset()
    status, out = _sign(w, "GV008", credential_id=credential)
    assert status == 422, out
    assert out["error"] == code, out
    assert "Không có mã băm nào được gửi đi" in str(out["message"])
    assert _hash_calls(w) == []  # neither authorize nor signHash was ever called
    assert signed_count(w.svc, "GV008") == 0


def test_a_wrong_pin_signs_nothing(csc_world: CscWorld) -> None:
    w = csc_world
    w.csc.reset()
    status, out = _sign(w, "GV008", credential_id="GV008-key", pin="000000")
    assert status == 422 and out["error"] == "invalid_pin", out
    assert "PIN" in str(out["message"])
    assert w.csc.calls("signatures/signHash") == []
    assert signed_count(w.svc, "GV008") == 0


def test_otp_and_provider_500s_then_a_retry_completes(csc_world: CscWorld) -> None:
    """GV005's credential asks for an OTP too. The provider fails every signHash: nothing is
    signed, every record keeps waiting with the reason; the retry signs each record once."""
    w = csc_world
    w.csc.reset()
    status, out = _sign(w, "GV005")
    assert status == 422 and out["error"] == "invalid_otp", out  # no OTP given
    w.csc.fail_next(100, status=500, methods=["signatures/signHash"])
    status, out = _sign(w, "GV005", otp=OTP)
    assert status == 200, out
    assert out["signed"] == 0 and out["failed"] == STUDENTS, out
    assert signed_count(w.svc, "GV005") == 0
    notes = {st.remote_note for st in teacher_steps(w.svc, "GV005")}
    assert len(notes) == 1 and "HTTP 500" in str(notes.pop())
    with w.svc.client("GV005") as c:
        waiting = c.get("/api/v1/signatures/pending").json()
    assert len(waiting) == STUDENTS and all("HTTP 500" in (p["remote_note"] or "") for p in waiting)
    w.csc.reset()
    status, out = _sign(w, "GV005", otp=OTP)
    assert status == 200 and out["signed"] == STUDENTS and out["authorizations"] == 1, out
    assert {st.remote_note for st in teacher_steps(w.svc, "GV005")} == {None}
    assert_signed_and_intact(w.svc, "GV005", w.tmp)


@pytest.mark.parametrize(("consumes", "take", "drop_after"), [(False, 30, 20), (True, None, 0)],
                         ids=["mid-batch-before-signing", "answer-lost"])
def test_a_connection_dropped_mid_batch_loses_nothing_and_signs_nothing_twice(
        csc_world: CscWorld, consumes: bool, take: int | None, drop_after: int) -> None:
    """The provider drops a signHash call — the second of the batch before signing it, or
    one it did sign with only the answer lost: the service authorises what that call carried
    again and finishes, and every field ends with exactly one signature."""
    w = csc_world
    who = "GV006"
    steps = [st for st in teacher_steps(w.svc, who) if st.state.value == "waiting"]
    batch = steps[:take] if take else steps
    w.csc.reset()
    w.csc.drop_after_signatures(drop_after, consumes=consumes)
    status, out = _sign(w, who, step_ids=[st.id for st in batch])
    assert status == 200, out
    assert out["signed"] == len(batch) and out["failed"] == 0, out
    assert out["authorizations"] == 2, out  # once, then again for what the lost call carried
    assert [e["dropped"] for e in w.csc.calls("signatures/signHash")].count(True) == 1
    assert signed_count(w.svc, who) == (take if take else STUDENTS)
    if consumes:
        assert_signed_and_intact(w.svc, who, w.tmp)


def test_csc_v2_and_an_expired_sad_is_authorised_again(csc_world: CscWorld) -> None:
    """The SAD expires between two signHash calls of the batch (the double expires it right
    after the first call returns): the service authorises the rest again, with the PIN it was
    given for this batch, and the batch completes."""
    w = csc_world
    w.csc.reset()
    cfg = w.svc.ctx.remote.get("mysign2")
    assert isinstance(cfg, CscProviderConfig)

    def factory(c: CscProviderConfig) -> CscClient:
        client = cfg.client("mysign2")
        sign = client.sign_hashes

        def then_expire(*a: object, **kw: object) -> list[bytes]:
            out = sign(*a, **kw)  # type: ignore[arg-type]
            w.csc.expire_sads()
            return out

        client.sign_hashes = then_expire  # type: ignore[method-assign]
        return client

    result = remote_signing.sign_with_csc(w.svc.ctx, w.svc.user("GV007").id, "mysign2", pin=PIN,
                                          password=PASSWORD, client_factory=factory)
    assert result.count("signed") == STUDENTS and result.count("failed") == 0, result.items[:3]
    assert result.authorizations == 2  # 20 hashes per call: once, then again for the last 20
    refused = [e for e in w.csc.calls("signatures/signHash") if e.get("status") == 400]
    assert len(refused) == 1 and "expired" in str(refused[0].get("error_description", "")).lower(), refused
    assert [e["api"] for e in w.csc.calls("credentials/authorize")] == ["v2", "v2"]
    assert_signed_and_intact(w.svc, "GV007", w.tmp)

def test_the_plan_order_and_the_assignment_hold_as_for_a_token(csc_world: CscWorld) -> None:
    """The homeroom teacher's fields open only after the subject teachers'; another teacher's
    field is not anyone else's to sign. Asked for by id, both are refused and nothing is sent."""
    w = csc_world
    w.csc.reset()
    homeroom = [st.id for st in teacher_steps(w.svc, "GV002") if st.field_name == "homeroom"][:3]
    others = [st.id for st in teacher_steps(w.svc, "GV011")][:3]
    assert homeroom and others
    status, out = _sign(w, "GV002", step_ids=homeroom + others)
    assert status == 200, out
    assert out["signed"] == 0 and out["refused"] == 6, out
    assert {i["code"] for i in out["items"]} == {"not_pending"}
    assert _hash_calls(w) == []


def test_only_the_school_administrator_links_accounts(csc_world: CscWorld) -> None:
    w = csc_world
    target = w.svc.user("GV010").id
    body = {"account": "csc-gv010"}
    with w.svc.client("GV003") as c:
        assert c.put(f"/api/v1/users/{target}/remote-accounts/mysign", json=body).status_code == 403
    with w.svc.client("qtht") as c:
        assert c.put(f"/api/v1/users/{target}/remote-accounts/mysign", json=body).status_code == 204
        unknown = c.put(f"/api/v1/users/{target}/remote-accounts/viettel", json=body)
        assert unknown.status_code == 422 and "mysign" in unknown.json()["message"], unknown.text
    with w.svc.client() as anon:
        r = anon.post("/api/v1/signatures/remote/csc", json={"provider": "mysign", "pin": "1"})
        assert r.status_code == 401


def test_the_agent_signs_the_class_through_csc_with_one_pin(csc_world: CscWorld) -> None:
    """``hsdt agent --provider mysign``: the HSĐT password, the provider password, the PIN —
    each once — and the class is signed; nothing is left for the teacher."""
    w = csc_world
    w.csc.reset()
    run = subprocess.run(
        [sys.executable, "-m", "hsdt.cli", "agent", "--server", w.svc.url, "--user", w.svc.username("GV010"),
         "--password-stdin", "--pin-stdin", "--provider", "mysign", "--yes"],
        input=f"{SERVICE_PASSWORD}\n{PASSWORD}\n{PIN}\n", capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Đã ký {STUDENTS} ô chữ ký qua Viettel MySign (thử), không có lỗi." in run.stdout
    assert len(w.csc.calls("credentials/authorize")) == 1
    assert signed_count(w.svc, "GV010") == STUDENTS
    again = subprocess.run(
        [sys.executable, "-m", "hsdt.cli", "agent", "--server", w.svc.url, "--user", w.svc.username("GV010"),
         "--password-stdin", "--provider", "nosuch", "--yes"],
        input=f"{SERVICE_PASSWORD}\n", capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "Không có nhà cung cấp ký từ xa «nosuch» (có: mysign, mysign2)" in (
        again.stderr.replace("\n", " ")), again.stderr
