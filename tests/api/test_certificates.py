"""Registering and withdrawing signing certificates over the API (Điều 10: one person's key).

The school's administrator binds a certificate to a teacher; a key that could never sign
(too weak, expired) is refused at registration, a certificate is one person's only, and a
withdrawn one signs nothing more — with every step in the audit log.
"""

from __future__ import annotations

import base64

from sqlalchemy import select

from hsdt.db.models import AuditEntry

from .service_world import Service


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


def _prepare(service: Service, who: str, der: bytes) -> tuple[int, dict[str, object]]:
    with service.client(who) as c:
        step = c.get("/api/v1/signatures/pending").json()[0]["step_id"]
        r = c.post(f"/api/v1/signatures/{step}/prepare", json={"certificate": _b64(der), "chain": []})
    return r.status_code, r.json()


def test_bind_then_withdraw_a_certificate(service: Service) -> None:
    from hsdt.domain.bundles import bundle_json

    service.import_and_render(bundle_json(service.bundle))
    teacher = service.user("GV003")
    new = service.pki.identity("ec_p256_ok").cert.dump()  # issued by the school's CA, bound to nobody yet
    status, out = _prepare(service, "GV003", new)
    assert status == 422 and out["error"] == "cert_not_bound", out

    with service.client("GV003") as c:  # a teacher registers nothing, not even for themself
        mine = c.post(f"/api/v1/users/{teacher.id}/certificates", json={"certificate": _b64(new)})
        assert mine.status_code == 403
    with service.client("qtht") as c:
        r = c.post(f"/api/v1/users/{teacher.id}/certificates", json={"certificate": _b64(new)})
        assert r.status_code == 201, r.text
        fp = r.json()["fingerprint"]
        assert r.json()["user_id"] == teacher.id and not r.json()["revoked"]
        again = c.post(f"/api/v1/users/{teacher.id}/certificates", json={"certificate": _b64(new)})
        assert again.status_code == 201 and again.json()["fingerprint"] == fp  # twice: the same row
        other = service.user("GV004").id
        taken = c.post(f"/api/v1/users/{other}/certificates", json={"certificate": _b64(new)})
        assert taken.status_code == 409 and taken.json()["error"] == "certificate_taken", taken.text
        for name, code in (("weak_rsa", "weak_key"), ("expired", "cert_expired")):
            der = service.pki.identity(name).cert.dump()
            r = c.post(f"/api/v1/users/{teacher.id}/certificates", json={"certificate": _b64(der)})
            assert r.status_code == 422 and r.json()["error"] == code, r.text
        bad = c.post(f"/api/v1/users/{teacher.id}/certificates", json={"certificate": _b64(b"not DER")})
        assert bad.status_code == 422 and bad.json()["error"] == "bad_certificate"

    status, out = _prepare(service, "GV003", new)  # now theirs: accepted up to the CA's checks
    assert status != 422 or out["error"] != "cert_not_bound", out

    with service.client("qtht") as c:
        blank = c.post(f"/api/v1/certificates/{fp}/withdraw", json={"reason": "  "})
        assert blank.status_code == 422 and blank.json()["error"] == "reason_required"
        r = c.post(f"/api/v1/certificates/{fp}/withdraw", json={"reason": "Giáo viên báo mất thiết bị"})
        assert r.status_code == 200 and r.json()["revoked"], r.text
    status, out = _prepare(service, "GV003", new)
    assert status == 422 and out["error"] == "cert_unusable", out

    with service.sessions() as s:
        actions = [e.action for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action.in_(("bind_certificate", "withdraw_certificate"))).order_by(AuditEntry.id))]
        refused = set(s.scalars(select(AuditEntry.details["code"].as_string()).where(
            AuditEntry.action == "bind_certificate", AuditEntry.outcome == "refused")))
    assert actions.count("bind_certificate") >= 1 and "withdraw_certificate" in actions
    assert {"weak_key", "cert_expired", "certificate_taken"} <= refused
