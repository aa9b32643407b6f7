"""A running service for the API tests: database, test PKI, archive, API over loopback HTTP.

Built on the session ``world`` (the test PKI served on loopback with the school seal and the
principal on SoftHSM2). The school, its accounts and certificates are provisioned from the
sample bundle exactly as an administrator would; windows for data entry and signing are
open unless a test closes them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from hsdt.agent import ApiClient, open_file_key, run_agent
from hsdt.api.app import create_app
from hsdt.archive.ingest import PERMANENT, Archive
from hsdt.archive.store import LocalWormStore
from hsdt.db.engine import make_engine, session_factory
from hsdt.db.migrate import upgrade
from hsdt.db.models import LockWindow, OrgUnit, User, WindowKind
from hsdt.demo import open_identity
from hsdt.domain.schema import TermBundle
from hsdt.service.context import ServiceContext
from hsdt.service.provision import provision_school, username_for
from hsdt.signing import testpki
from hsdt.signing.verification import Verifier

PASSWORD = "mật-khẩu-thử-nghiệm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_app(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on a loopback port in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Service:
    pki: testpki.TestPKI
    bundle: TermBundle
    ctx: ServiceContext
    sessions: sessionmaker[Session]
    app: FastAPI
    root: Path
    url: str = ""
    _tokens: dict[str, str] = field(default_factory=dict)

    def username(self, who: str) -> str:
        """``who``: a staff code (GV001) or qtht / vanthu / phong / so."""
        if who in ("phong", "so"):
            with self.sessions() as s:
                unit = s.query(OrgUnit).filter_by(kind="district" if who == "phong" else "province").first()
                assert unit is not None
                return f"{unit.code}.admin".lower()
        return username_for(self.bundle.school.code, who)

    def client(self, who: str | None = None) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=120)
        if who is not None:
            c.headers["Authorization"] = f"Bearer {self.token(who)}"
        return c

    def token(self, who: str) -> str:
        if who not in self._tokens:
            r = httpx.post(f"{self.url}/api/v1/auth/token",
                           json={"username": self.username(who), "password": PASSWORD}, timeout=60)
            r.raise_for_status()
            self._tokens[who] = r.json()["access_token"]
        return self._tokens[who]

    def user(self, who: str) -> User:
        with self.sessions() as s:
            u = s.query(User).filter_by(username=self.username(who)).one()
            s.expunge(u)
            return u

    def sign_as(self, who: str) -> Any:
        """Run the agent for ``who`` with their software key (PKCS#12)."""
        ident = self.pki.identity(who)
        assert ident.p12_path is not None
        api = ApiClient(self.url)
        try:
            api.sign_in(self.username(who), PASSWORD)
            return run_agent(api, lambda: open_file_key(ident.p12_path,
                                                        testpki.SOFTWARE_P12_PASSPHRASE.decode()))
        finally:
            api.close()

    def import_and_render(self, bundle: dict[str, Any], who: str = "GV001"
                          ) -> tuple[int, list[dict[str, Any]]]:
        with self.client(who) as c:
            r = c.post("/api/v1/bundles", json=bundle)
            assert r.status_code == 201, r.text
            bid = r.json()["id"]
            assert c.post(f"/api/v1/bundles/{bid}/lock").status_code == 200
            r = c.post(f"/api/v1/bundles/{bid}/render")
            assert r.status_code == 202, r.text
            revs = r.json()
            r = c.post(f"/api/v1/bundles/{bid}/seal")
            assert r.status_code == 202, r.text
        return bid, revs


def open_windows(sessions: sessionmaker[Session], school_code: str, year: str, term: str,
                 now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    with sessions() as s, s.begin():
        school = s.query(OrgUnit).filter_by(code=school_code).one()
        for kind in WindowKind:
            s.add(LockWindow(kind=kind, org_unit_id=school.id, school_year=year, term=term,
                             opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=30),
                             reason="kiểm thử"))


def worker_env(svc: Service, db_url: str) -> dict[str, str]:
    """What a worker process needs to act for this service (same database, files, PKI)."""
    return {"HSDT_DATABASE_URL": db_url, "HSDT_WORK_DIR": str(svc.root / "work"),
            "HSDT_ARCHIVE_ROOT": str(svc.root / "archive"), "HSDT_TEST_PKI_DIR": str(svc.pki.workdir),
            "HSDT_ARCHIVE_BACKEND": "local"}


def build_service(pki: testpki.TestPKI, bundle: TermBundle, root: Path, db_url: str | None = None,
                  dispatcher: Any = None) -> Service:
    url = db_url or f"sqlite:///{root / 'hsdt.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions() as s, s.begin():
        certs = {t.id: pki.identity(t.id).cert.dump() for t in bundle.teachers}
        provision_school(s, bundle, password=PASSWORD, certificates=certs,
                         seal_certificate=pki.seal.cert.dump())
    open_windows(sessions, bundle.school.code, bundle.school_year, bundle.term)

    def archive() -> Archive:
        return Archive(LocalWormStore(root / "archive"), root / "archive",
                       Verifier(pki.trust_roots(), None, online=False), retain_until=PERMANENT)

    from hsdt.workers.context import archive_lock

    ctx = ServiceContext(sessions=sessions, trust_roots=pki.trust_roots(), tsa_url=pki.tsa_url,
                         workspace_root=root / "work",
                         seal_keys={bundle.school.code: lambda: open_identity(pki, pki.seal)},
                         archive_factory=archive, dispatcher=dispatcher,
                         archive_lock=lambda: archive_lock(root / "archive"))
    return Service(pki, bundle, ctx, sessions, create_app(ctx), root)
