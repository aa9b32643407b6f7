"""A class through the API: import, lock, render, seal, every teacher's agent, the principal's
token, B-LTA and the archive; then search, download, report, public page and verification."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
from sqlalchemy import select

from hsdt.agent import ApiClient, open_token_key, run_agent
from hsdt.archive.tlog import (
    SignedTreeHead,
    TransparencyLog,
    load_public_key,
    public_key_fingerprint,
    verify_consistency,
    verify_tree_head,
)
from hsdt.db.models import AuditEntry, SchoolClass
from hsdt.domain.bundles import bundle_json

from .service_world import PASSWORD, Service


def sign_class(svc: Service, records: int | None = None) -> None:
    """Every teacher's agent in the plan's order, then the principal's token: each signs all
    that waits for them, which is ``records`` records' worth (default: the whole class)."""
    b = svc.bundle
    records = len(b.students) if records is None else records
    principal, homeroom = b.school.principal_id, b.class_.homeroom_teacher_id
    for t in b.teachers:
        if t.id not in (principal, homeroom):
            result = svc.sign_as(t.id)
            assert not result.failed, result.failed
            subjects = sum(1 for a in b.assignments if a.teacher_id == t.id)
            assert len(result.signed) == subjects * records, (t.id, result.signed)
    result = svc.sign_as(homeroom)
    assert not result.failed, result.failed
    subjects = sum(1 for a in b.assignments if a.teacher_id == homeroom)
    assert len(result.signed) == (subjects + 1) * records
    # The principal's key lives in SoftHSM2; the agent asks for the PIN once.
    pki = svc.pki
    ident = pki.identity(principal)
    pki.activate_softhsm()
    api = ApiClient(svc.url)
    try:
        api.sign_in(svc.username(principal), PASSWORD)
        result = run_agent(api, lambda: open_token_key(
            pki.pkcs11_lib, pki.token_label, ident.pkcs11_key_label or "", pki.user_pin,
            list(ident.chain)))
    finally:
        api.close()
    assert not result.failed, result.failed
    assert result.pin_prompts == 1
    assert len(result.signed) == records


def test_class_from_bundle_to_archive(service: Service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, revs = service.import_and_render(bundle_json(service.bundle))
    assert len(revs) == len(service.bundle.students)
    # Progress (Điều 11.3): every record waits at stage 1, for each subject teacher by name.
    with service.sessions() as s:
        name = service.bundle.class_.name
        class_id = s.scalars(select(SchoolClass.id).where(SchoolClass.name == name)).one()
    with service.client("GV001") as c:
        progress = c.get("/api/v1/progress", params={"class_id": class_id}).json()
    n = len(service.bundle.students)
    assert progress["records"] == n and progress["by_state"] == {"certified": n}
    teachers = {t.id: t.full_name for t in service.bundle.teachers}
    expected = {(f"subject_{a.subject}", teachers[a.teacher_id]) for a in service.bundle.assignments}
    assert {(w["field"], w["for"]) for w in progress["waiting"]} == expected
    assert {(w["records"], w["stage"]) for w in progress["waiting"]} == {(n, 1)}
    sign_class(service)
    with service.client("GV001") as c:
        progress = c.get("/api/v1/progress", params={"class_id": class_id}).json()
    assert progress["by_state"] == {"archived": n} and progress["waiting"] == []
    with service.client("vanthu") as c:
        docs = c.get("/api/v1/documents").json()
        assert {d["state"] for d in docs} == {"archived"}, docs
        student = service.bundle.students[0].code
        found = c.get("/api/v1/archive/records", params={"student_code": student}).json()
        assert len(found) == 1
        sha = found[0]["sha256"]
        pdf = c.get(f"/api/v1/archive/records/{sha}/pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        report = c.get(f"/api/v1/archive/records/{sha}/report").json()
        assert report["verdict"] == "valid", report
        checked = c.post("/api/v1/verify", content=pdf.content, headers={"Content-Type": "application/pdf"})
        assert checked.status_code == 200 and checked.json()["verdict"] == "valid"
    out = tmp_path / "r.pdf"
    out.write_bytes(pdf.content)
    pdfsig = subprocess.run(["pdfsig", str(out)], capture_output=True, text=True)
    assert pdfsig.stdout.count("Signature is Valid") == 15, pdfsig.stdout
    with service.client() as anon:
        page = anon.get(f"/v/{found[0]['record_id']}")
        assert page.status_code == 200 and "Hồ sơ hợp lệ" in page.text
        assert re.search(r"<dt>Ngày ký cuối</dt><dd>\d{2}/\d{2}/\d{4}</dd>", page.text), page.text
        assert service.bundle.students[0].full_name not in page.text  # minimal disclosure
        assert anon.get("/v/hoc_ba_thcs.KHONG-CO").status_code == 404
        _check_published_log(anon, n, service.root / "archive" / "log")


def _check_published_log(anon: httpx.Client, records: int, log_dir: Path) -> None:
    """A Sở keeps the log's heads without signing in, and later checks that today's log
    extends the head it kept, from a consistency proof alone."""
    published = anon.get("/api/v1/public/log")
    assert published.status_code == 200, published.text
    body = published.json()
    key = load_public_key(body["public_key_pem"].encode(), "khoá")
    assert body["public_key_sha256"] == public_key_fingerprint(key)
    now = SignedTreeHead.from_dict(body["tree_head"])
    heads = [SignedTreeHead.from_dict(h) for h in body["heads"]]
    assert now.size == records and all(verify_tree_head(h, key) for h in [*heads, now])
    # The class went in as one batch, so every kept head is at today's size; the root the Sở
    # would have kept from a head when the log held 2 entries is read from the log itself.
    with TransparencyLog.open(log_dir, read_only=True) as log:
        kept_size, kept_root = 2, log.root(2)
    r = anon.get("/api/v1/public/log/consistency", params={"old_size": kept_size})
    assert r.status_code == 200, r.text
    answer = r.json()
    new = SignedTreeHead.from_dict(answer["tree_head"])
    proof = [bytes.fromhex(p) for p in answer["proof"]]
    assert answer["new_size"] == new.size == records and verify_tree_head(new, key)
    assert proof and verify_consistency(kept_size, new.size, kept_root, new.root_hash, proof)
    assert not verify_consistency(kept_size, new.size, bytes(32), new.root_hash, proof)
    beyond = anon.get("/api/v1/public/log/consistency", params={"old_size": records + 1})
    assert beyond.status_code == 400 and "cắt bớt" in beyond.json()["message"]
    assert anon.get("/api/v1/public/log/consistency", params={"old_size": -1}).status_code == 422


def test_signing_out_over_http_is_audited_with_the_address(service: Service) -> None:
    signed_in = httpx.post(f"{service.url}/api/v1/auth/token",
                           json={"username": service.username("vanthu"), "password": PASSWORD})
    token = signed_in.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.post(f"{service.url}/api/v1/auth/logout", headers=headers).status_code == 204
    assert httpx.get(f"{service.url}/api/v1/signatures/pending", headers=headers).status_code == 401
    with service.sessions() as s:
        out = s.scalars(select(AuditEntry).where(AuditEntry.action == "sign_out")
                        .order_by(AuditEntry.id.desc())).first()
    assert out is not None and out.actor == service.username("vanthu") and out.ip == "127.0.0.1"
