"""``hsdt agent`` and ``hsdt serve`` as a person runs them: real processes, real HTTP, real keys.

The agent signs a subject teacher's fields with a software key (PKCS#12), the password and
the passphrase read from stdin; then the same class goes through ``hsdt serve`` configured
only from the environment (database, trust anchors, TSA, the school seal on SoftHSM2).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from typer.testing import CliRunner

from hsdt.cli import app
from hsdt.domain.bundles import bundle_json
from hsdt.domain.sample import sample_bundle
from hsdt.signing import testpki

from .service_world import PASSWORD, Service, build_service, free_port

TEACHER = "GV003"  # teaches TOAN and GDDP: two fields on every record, nothing else
PASSPHRASE = testpki.SOFTWARE_P12_PASSPHRASE.decode()


def agent(svc: Service, who: str, stdin: str, *extra: str, p12: Path | None = None,
          url: str | None = None) -> subprocess.CompletedProcess[str]:
    key = p12 or svc.pki.identity(who).p12_path
    assert key is not None
    return subprocess.run(
        [sys.executable, "-m", "hsdt.cli", "agent", "--server", url or svc.url, "--user", svc.username(who),
         "--password-stdin", "--pin-stdin", "--p12", str(key), *extra],
        input=stdin, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200"})


def pending(svc: Service, who: str, url: str | None = None) -> list[dict[str, object]]:
    with httpx.Client(base_url=url or svc.url, timeout=60) as c:
        token = c.post("/api/v1/auth/token", json={"username": svc.username(who), "password": PASSWORD})
        token.raise_for_status()
        r = c.get("/api/v1/signatures/pending",
                  headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    r.raise_for_status()
    return list(r.json())


def test_a_subject_teacher_signs_the_class_with_the_agent(service: Service) -> None:
    service.import_and_render(bundle_json(service.bundle))
    waiting = pending(service, TEACHER)
    fields = sum(1 for a in service.bundle.assignments if a.teacher_id == TEACHER)
    assert len(waiting) == fields * len(service.bundle.students)

    # A wrong password: refused with the server's Vietnamese reason, nothing signed.
    run = agent(service, TEACHER, "sai-mật-khẩu-rồi\n" + PASSPHRASE + "\n", "--yes")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Lỗi:" in run.stderr and "HTTP 401" in run.stderr, run.stderr
    # Asked to confirm, the teacher says no: the list is shown and nothing is signed.
    run = agent(service, TEACHER, f"{PASSWORD}\nn\n")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(waiting)} ô chữ ký đang chờ bạn" in run.stdout
    assert str(waiting[0]["record_id"]) in run.stdout and str(waiting[0]["student_code"]) in run.stdout
    assert "Đã huỷ" in run.stdout
    assert len(pending(service, TEACHER)) == len(waiting)

    # --yes: the password, then the passphrase once, both from stdin.
    run = agent(service, TEACHER, f"{PASSWORD}\n{PASSPHRASE}\n", "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Đã ký {len(waiting)} ô chữ ký, không có lỗi." in run.stdout
    assert pending(service, TEACHER) == []

    run = agent(service, TEACHER, f"{PASSWORD}\n", "--yes")  # nothing left: no passphrase asked
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Không có ô chữ ký nào đang chờ bạn." in run.stdout


def test_a_key_of_someone_else_fails_every_field_with_exit_code_1(service: Service) -> None:
    """The homeroom teacher's fields open once the subjects are signed; GV002 has subject fields
    of their own waiting. Signing them with another teacher's key is refused field by field."""
    waiting = pending(service, "GV002")
    assert waiting
    other = service.pki.identity(TEACHER).p12_path
    run = agent(service, "GV002", f"{PASSWORD}\n{PASSPHRASE}\n", "--yes", p12=other)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"Đã ký 0 ô chữ ký, {len(waiting)} ô không ký được." in run.stdout
    assert "không được đăng ký cho tài khoản của bạn" in " ".join(run.stderr.split())
    assert len(pending(service, "GV002")) == len(waiting)


def test_the_agent_refuses_an_incomplete_key_choice() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["agent", "--server", "http://127.0.0.1:9", "--user", "x",
                                 "--password-stdin"], input="x\n", env={"HSDT_PKCS11_LIB": ""})
    assert result.exit_code == 2
    assert "Cần khoá ký" in result.output


# -- hsdt serve --------------------------------------------------------------------------------
def serve_env(pki: testpki.TestPKI, school: str, root: Path) -> dict[str, str]:
    roots = []
    for n, cert in enumerate(pki.trust_roots()):
        path = root / f"root{n}.der"
        path.write_bytes(cert.dump())
        roots.append(str(path))
    seal = pki.seal
    assert seal.pkcs11_key_label is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSDT_")}
    return {**env, **pki.env(),
            "HSDT_DATABASE_URL": f"sqlite:///{root / 'hsdt.sqlite3'}",
            "HSDT_TRUST_ROOTS": os.pathsep.join(roots), "HSDT_TSA_URL": pki.tsa_url,
            "HSDT_WORK_DIR": str(root / "work"), "HSDT_ARCHIVE_ROOT": str(root / "archive"),
            "HSDT_PKCS11_LIB": pki.pkcs11_lib, "HSDT_PKCS11_PIN": pki.user_pin,
            "HSDT_SEAL_SCHOOL": school, "HSDT_SEAL_TOKEN_LABEL": pki.token_label,
            "HSDT_SEAL_KEY_LABEL": seal.pkcs11_key_label, "HSDT_SEAL_CHAIN": str(pki.intermediate_cert_path)}


@contextmanager
def hsdt_serve(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hsdt.cli", "serve", "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"hsdt serve exited {proc.returncode}: {proc.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("hsdt serve did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_from_the_environment_then_the_agent_signs_through_it(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = sample_bundle(seed=5, students=2)
    # The school, its accounts and windows provisioned in the database the server will use;
    # the server itself knows only its environment.
    svc = build_service(world.pki, bundle, tmp_path)
    svc.ctx.close()
    env = serve_env(world.pki, bundle.school.code, tmp_path)
    with hsdt_serve(env) as url:
        svc.url = url
        svc.import_and_render(bundle_json(bundle))  # the seal: the server's key on SoftHSM2
        with svc.client("qtht") as c:
            docs = c.get("/api/v1/documents").json()
        assert {d["state"] for d in docs} == {"certified"}, docs
        run = agent(svc, TEACHER, f"{PASSWORD}\n{PASSPHRASE}\n", "--yes", url=url)
        assert run.returncode == 0, run.stdout + run.stderr
        assert pending(svc, TEACHER, url) == []


def test_serve_names_what_is_missing(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Refused at start, before any database is touched, with the variable to set."""
    runner = CliRunner()
    (tmp_path / "trust").mkdir()
    db = tmp_path / "db.sqlite3"
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("HSDT_")}
    env.update({"HSDT_CONFIG_DIR": str(tmp_path), "HSDT_DATABASE_URL": f"sqlite:///{db}"})

    def serve(**more: str) -> str:
        result = runner.invoke(app, ["serve"], env={**env, **more})
        assert result.exit_code == 1, result.output
        return " ".join(result.output.split())

    assert "Chưa có CA gốc tin cậy nào" in serve()
    missing = str(tmp_path / "khong-co.pem")
    assert "HSDT_TRUST_ROOTS: không có tệp chứng thư" in serve(HSDT_TRUST_ROOTS=missing)
    root = str(world.pki.root_cert_path)
    assert "Chưa đặt HSDT_TSA_URL" in serve(HSDT_TRUST_ROOTS=root)
    said = serve(HSDT_TRUST_ROOTS=root, HSDT_TSA_URL=world.pki.tsa_url, HSDT_SEAL_SCHOOL="LC-THCS-001")
    assert "thiếu HSDT_SEAL_TOKEN_LABEL, HSDT_SEAL_KEY_LABEL, HSDT_PKCS11_LIB, HSDT_PKCS11_PIN" in said
    assert not db.exists()
