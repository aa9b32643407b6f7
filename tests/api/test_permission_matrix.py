"""Acceptance: every role × every endpoint, in and out of scope, gets exactly the answer the
regulation implies — allowed, 403 (the caller may know the target, but may not do this), or
404 (the caller may not even know that the target exists).

The expectations below are written from the rule table of :mod:`hsdt.db.scope` (Thông tư
22/2021, Điều 4–14), not recorded from what the server answers. Four scopes:

``own``
    The callers belong to school A (LC-THCS-001), its Phòng and its Sở; the targets are in
    A's class 7A1, which GV002 leads (and teaches Ngữ văn in) and GV003 teaches Toán in.
``other_class``
    The same callers; the targets are in A's class 7A2, which neither GV002 nor GV003 leads
    or teaches (its homeroom teacher is GV004, its subjects are taught by GV004–GV011).
``other_district``
    The callers belong to school B, in another district of the same province (so the Sở is
    the same account, and its Phòng is another one); the targets are A's, in 7A1.
``other_province``
    The callers belong to school C, in another province; the targets are A's, in 7A1.

Roles (columns): ``so`` the Sở's administrator, ``phong`` the Phòng's, ``qtht`` the school's
system administrator, ``GV001`` the principal, ``GV002`` the homeroom teacher (who also
teaches a subject), ``GV003`` a subject teacher, ``vanthu`` the clerk.

Cells: ``ok`` allowed — anything but 401/403/404 (the action itself may still be refused
later, 409/422, because the field is already signed, not yet open, the certificate sent is
deliberately not the caller's, …); ``403``; ``404``.

Allowed calls are arranged so that they do not change what the other cells find: prepare
sends a certificate that is not the caller's (422 ``cert_not_bound`` after every permission
check), approve names no witnesses (422), apply targets a correction not yet approved (409),
windows are opened and closed for a school year far away; the destructive ones (reject,
refuse, the first seal) act on objects kept for them alone.
"""

from __future__ import annotations

import base64
import secrets
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hsdt.agent import sign_value
from hsdt.api.auth import TOKEN_TTL, token_digest
from hsdt.db.models import ApprovalState, OrgUnit, OrgUnitKind, RemoteApproval, SchoolClass
from hsdt.db.people import ApiToken, User
from hsdt.domain.bundles import bundle_json
from hsdt.domain.sample import sample_bundle
from hsdt.domain.schema import Assignment, TermBundle
from hsdt.domain.schema import SchoolClass as ClassInfo
from hsdt.service.provision import provision_school

from .service_world import PASSWORD, Service, build_service, open_windows, serve_app

API = "/api/v1"
ROLES = ("so", "phong", "qtht", "GV001", "GV002", "GV003", "vanthu")
FAR_YEAR = "2030-2031"  # windows opened and closed by the matrix touch nothing else


def table(text: str) -> dict[str, dict[str, str]]:
    """``request → role → cell`` from a table laid out like the one in :mod:`hsdt.db.scope`."""
    rows = [line.split() for line in textwrap.dedent(text).strip().splitlines()
            if line.strip() and set(line.strip()) - set("= ")]
    header, *body = rows
    assert tuple(header[1:]) == ROLES, header
    out = {}
    for row in body:
        assert row[0] not in out, row[0]
        out[row[0]] = dict(zip(ROLES, row[1:], strict=True))
    return out


# --------------------------------------------------------------------------------------------
# The regulation's answers
# --------------------------------------------------------------------------------------------
# Bundles: import is Điều 12's data entry (school admin, principal, the class's homeroom
# teacher); lock — and making the records of locked data — is the leader's decision (Điều 14)
# or the school admin's; the seal is set going by the principal or the school admin only.
# Signing: each field by the one person the plan names who holds that duty (Điều 10); Sở and
# Phòng inspect but sign nothing; the clerk never signs. Rejecting a field is the same right
# as signing it. A preparation is its preparer's alone. Corrections: requested by the
# principal or the class's teachers, decided (approve/refuse) and applied by the principal
# (Điều 11.4). Windows (Điều 13): Sở, Phòng, school admin, principal, each over its own unit
# and below. Progress and records: everyone over what they can see (teachers their classes).
# Units above one's own are common knowledge (403, not 404). Verification of a PDF one holds
# needs a sign-in but no scope.
OWN = table("""
    ====================  =====  =====  =====  =====  =====  =====  ======
    request               so     phong  qtht   GV001  GV002  GV003  vanthu
    ====================  =====  =====  =====  =====  =====  =====  ======
    import_bundle         403    403    ok     ok     ok     403    403
    lock_bundle           403    403    ok     ok     403    403    403
    render_bundle         403    403    ok     ok     403    403    403
    seal_bundle           403    403    ok     ok     403    403    403
    get_document          ok     ok     ok     ok     ok     ok     ok
    prepare:seal          403    403    ok     ok     403    403    403
    prepare:TOAN          403    403    403    403    403    ok     403
    prepare:NGU_VAN       403    403    403    403    ok     403    403
    prepare:homeroom      403    403    403    403    ok     403    403
    prepare:principal     403    403    403    ok     403    403    403
    complete              404    404    404    404    404    ok     404
    reject:seal           403    403    ok     ok     403    403    403
    reject:TOAN           403    403    403    403    403    ok     403
    reject:NGU_VAN        403    403    403    403    ok     403    403
    reject:homeroom       403    403    403    403    ok     403    403
    reject:principal      403    403    403    ok     403    403    403
    reject:blank          403    403    403    403    403    ok     403
    request_correction    403    403    403    ok     ok     ok     403
    approve_correction    403    403    403    ok     403    403    403
    refuse_correction     403    403    403    ok     403    403    403
    apply_correction      403    403    403    ok     403    403    403
    open_window:province  ok     403    403    403    403    403    403
    open_window:district  ok     ok     403    403    403    403    403
    open_window:school    ok     ok     ok     ok     403    403    403
    open_window:class     ok     ok     ok     ok     403    403    403
    close_window:district ok     ok     403    403    403    403    403
    close_window:school   ok     ok     ok     ok     403    403    403
    close_window:class    ok     ok     ok     ok     403    403    403
    progress:province     ok     403    403    403    403    403    403
    progress:district     ok     ok     403    403    403    403    403
    progress:school       ok     ok     ok     ok     403    403    ok
    progress:class        ok     ok     ok     ok     ok     ok     ok
    archive_pdf           ok     ok     ok     ok     ok     ok     ok
    archive_report        ok     ok     ok     ok     ok     ok     ok
    verify                ok     ok     ok     ok     ok     ok     ok
    remote_providers      ok     ok     ok     ok     ok     ok     ok
    remote_csc            ok     ok     ok     ok     ok     ok     ok
    remote_approval       404    404    404    404    404    ok     404
    link_remote_account   ok     ok     ok     403    403    403    403
    bind_certificate      ok     ok     ok     403    403    403    403
    withdraw_certificate  ok     ok     ok     403    403    403    403
    ====================  =====  =====  =====  =====  =====  =====  ======
""")

# A class of their own school that GV002 and GV003 neither lead nor teach does not exist for
# them; for everyone else it is like their own class. The 7A2 record's subject fields belong
# to other teachers, its homeroom field to GV004.
OTHER_CLASS = table("""
    ====================  =====  =====  =====  =====  =====  =====  ======
    request               so     phong  qtht   GV001  GV002  GV003  vanthu
    ====================  =====  =====  =====  =====  =====  =====  ======
    import_bundle         403    403    ok     ok     404    404    403
    lock_bundle           403    403    ok     ok     404    404    403
    render_bundle         403    403    ok     ok     404    404    403
    seal_bundle           403    403    ok     ok     404    404    403
    get_document          ok     ok     ok     ok     404    404    ok
    prepare:seal          403    403    ok     ok     404    404    403
    prepare:TOAN          403    403    403    403    404    404    403
    prepare:NGU_VAN       403    403    403    403    404    404    403
    prepare:homeroom      403    403    403    403    404    404    403
    prepare:principal     403    403    403    ok     404    404    403
    reject:seal           403    403    ok     ok     404    404    403
    reject:TOAN           403    403    403    403    404    404    403
    reject:NGU_VAN        403    403    403    403    404    404    403
    reject:homeroom       403    403    403    403    404    404    403
    reject:principal      403    403    403    ok     404    404    403
    reject:blank          403    403    403    403    404    404    403
    request_correction    403    403    403    ok     404    404    403
    approve_correction    403    403    403    ok     404    404    403
    refuse_correction     403    403    403    ok     404    404    403
    apply_correction      403    403    403    ok     404    404    403
    open_window:class     ok     ok     ok     ok     404    404    403
    close_window:class    ok     ok     ok     ok     404    404    403
    progress:class        ok     ok     ok     ok     404    404    ok
    ====================  =====  =====  =====  =====  =====  =====  ======
""")

# School B's people: their Sở is A's Sở (so: as in OWN); for everyone else A does not exist —
# except the province above both schools, which everyone in it may know of.
OTHER_DISTRICT = table("""
    ====================  =====  =====  =====  =====  =====  =====  ======
    request               so     phong  qtht   GV001  GV002  GV003  vanthu
    ====================  =====  =====  =====  =====  =====  =====  ======
    import_bundle         403    404    404    404    404    404    404
    lock_bundle           403    404    404    404    404    404    404
    render_bundle         403    404    404    404    404    404    404
    seal_bundle           403    404    404    404    404    404    404
    get_document          ok     404    404    404    404    404    404
    prepare:seal          403    404    404    404    404    404    404
    prepare:TOAN          403    404    404    404    404    404    404
    prepare:NGU_VAN       403    404    404    404    404    404    404
    prepare:homeroom      403    404    404    404    404    404    404
    prepare:principal     403    404    404    404    404    404    404
    complete              404    404    404    404    404    404    404
    reject:seal           403    404    404    404    404    404    404
    reject:TOAN           403    404    404    404    404    404    404
    reject:NGU_VAN        403    404    404    404    404    404    404
    reject:homeroom       403    404    404    404    404    404    404
    reject:principal      403    404    404    404    404    404    404
    reject:blank          403    404    404    404    404    404    404
    request_correction    403    404    404    404    404    404    404
    approve_correction    403    404    404    404    404    404    404
    refuse_correction     403    404    404    404    404    404    404
    apply_correction      403    404    404    404    404    404    404
    open_window:province  ok     403    403    403    403    403    403
    open_window:district  ok     404    404    404    404    404    404
    open_window:school    ok     404    404    404    404    404    404
    open_window:class     ok     404    404    404    404    404    404
    close_window:district ok     404    404    404    404    404    404
    close_window:school   ok     404    404    404    404    404    404
    close_window:class    ok     404    404    404    404    404    404
    progress:province     ok     403    403    403    403    403    403
    progress:district     ok     404    404    404    404    404    404
    progress:school       ok     404    404    404    404    404    404
    progress:class        ok     404    404    404    404    404    404
    archive_pdf           ok     404    404    404    404    404    404
    archive_report        ok     404    404    404    404    404    404
    verify                ok     ok     ok     ok     ok     ok     ok
    remote_providers      ok     ok     ok     ok     ok     ok     ok
    remote_csc            ok     ok     ok     ok     ok     ok     ok
    remote_approval       404    404    404    404    404    404    404
    link_remote_account   ok     404    404    404    404    404    404
    bind_certificate      ok     404    404    404    404    404    404
    withdraw_certificate  ok     404    404    404    404    404    404
    ====================  =====  =====  =====  =====  =====  =====  ======
""")

# School C's people, another province: nothing of A's exists for them, its Sở included.
OTHER_PROVINCE = table("""
    ====================  =====  =====  =====  =====  =====  =====  ======
    request               so     phong  qtht   GV001  GV002  GV003  vanthu
    ====================  =====  =====  =====  =====  =====  =====  ======
    import_bundle         404    404    404    404    404    404    404
    lock_bundle           404    404    404    404    404    404    404
    render_bundle         404    404    404    404    404    404    404
    seal_bundle           404    404    404    404    404    404    404
    get_document          404    404    404    404    404    404    404
    prepare:seal          404    404    404    404    404    404    404
    prepare:TOAN          404    404    404    404    404    404    404
    prepare:NGU_VAN       404    404    404    404    404    404    404
    prepare:homeroom      404    404    404    404    404    404    404
    prepare:principal     404    404    404    404    404    404    404
    complete              404    404    404    404    404    404    404
    reject:seal           404    404    404    404    404    404    404
    reject:TOAN           404    404    404    404    404    404    404
    reject:NGU_VAN        404    404    404    404    404    404    404
    reject:homeroom       404    404    404    404    404    404    404
    reject:principal      404    404    404    404    404    404    404
    reject:blank          404    404    404    404    404    404    404
    request_correction    404    404    404    404    404    404    404
    approve_correction    404    404    404    404    404    404    404
    refuse_correction     404    404    404    404    404    404    404
    apply_correction      404    404    404    404    404    404    404
    open_window:province  404    404    404    404    404    404    404
    open_window:district  404    404    404    404    404    404    404
    open_window:school    404    404    404    404    404    404    404
    open_window:class     404    404    404    404    404    404    404
    close_window:district 404    404    404    404    404    404    404
    close_window:school   404    404    404    404    404    404    404
    close_window:class    404    404    404    404    404    404    404
    progress:province     404    404    404    404    404    404    404
    progress:district     404    404    404    404    404    404    404
    progress:school       404    404    404    404    404    404    404
    progress:class        404    404    404    404    404    404    404
    archive_pdf           404    404    404    404    404    404    404
    archive_report        404    404    404    404    404    404    404
    verify                ok     ok     ok     ok     ok     ok     ok
    remote_providers      ok     ok     ok     ok     ok     ok     ok
    remote_csc            ok     ok     ok     ok     ok     ok     ok
    remote_approval       404    404    404    404    404    404    404
    link_remote_account   404    404    404    404    404    404    404
    bind_certificate      404    404    404    404    404    404    404
    withdraw_certificate  404    404    404    404    404    404    404
    ====================  =====  =====  =====  =====  =====  =====  ======
""")

# Lists are filtered, never refused: which classes' records each caller finds
# (A1, A2: school A's 7A1 and 7A2; B1: school B's 7A1; school C has no records).
LISTS = table("""
    =========  ========  =====  =====  =====  =====  =====  ======
    caller     so        phong  qtht   GV001  GV002  GV003  vanthu
    =========  ========  =====  =====  =====  =====  =====  ======
    A          A1+A2+B1  A1+A2  A1+A2  A1+A2  A1     A1     A1+A2
    B          A1+A2+B1  B1     B1     B1     B1     B1     B1
    C          –         –      –      –      –      –      –
    =========  ========  =====  =====  =====  =====  =====  ======
""")

SCOPES: dict[str, tuple[str, str, dict[str, dict[str, str]]]] = {
    # scope: (whose people call, which class's targets, expected)
    "own": ("A", "home", OWN),
    "other_class": ("A", "other", OTHER_CLASS),
    "other_district": ("B", "home", OTHER_DISTRICT),
    "other_province": ("C", "home", OTHER_PROVINCE),
}


def test_tables_cover_every_request() -> None:
    assert set(OWN) == set(OTHER_DISTRICT) == set(OTHER_PROVINCE) == set(REQUESTS)
    assert set(OTHER_CLASS) <= set(OWN)
    assert {c for t in (OWN, OTHER_CLASS, OTHER_DISTRICT, OTHER_PROVINCE)
            for row in t.values() for c in row.values()} <= {"ok", "403", "404"}


# --------------------------------------------------------------------------------------------
# The world: three schools, records in two of them
# --------------------------------------------------------------------------------------------
STEP_KINDS = ("seal", "TOAN", "NGU_VAN", "homeroom", "principal")


@dataclass
class Targets:
    """The objects of one class that the requests act on."""

    bundle: dict[str, Any]
    bundle_id: int
    class_id: int
    record_id: str  # read, prepare, correction requests
    steps: dict[str, int]  # STEP_KINDS → step id of ``record_id``, for prepare
    reject_steps: dict[str, int]  # the same fields of a record kept for reject
    correction_id: int  # approve (no witnesses) and apply (not approved)
    refusable_id: int  # refuse
    class_window_id: int
    preparation_id: str = ""
    archive_sha: str = ""
    approval_id: str = ""  # a batch GV003 (school A) sent to their phone
    user_id: int = 0  # GV003 of school A: whose provider account is linked


@dataclass
class Matrix:
    service: Service
    http: httpx.Client
    accounts: dict[str, dict[str, str]]  # placement (A/B/C) → role or staff code → username
    units: dict[str, int]  # province / district / school of A
    unit_windows: dict[str, int]  # district / school of A
    targets: dict[str, Targets] = field(default_factory=dict)  # home (7A1) / other (7A2)
    records: dict[str, set[str]] = field(default_factory=dict)  # A1 / A2 / B1 → record ids
    class_ids: dict[str, int] = field(default_factory=dict)
    archived: set[str] = field(default_factory=set)
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        """A bearer token for ``username``, issued as a sign-in issues it.

        Signing in checks an Argon2 hash (about a second each, for some thirty accounts);
        sign-in itself is tested in ``test_auth.py``, so the tokens are written directly.
        """
        if username not in self._tokens:
            raw, now = secrets.token_urlsafe(32), datetime.now(UTC)
            with self.service.sessions() as s, s.begin():
                user = s.scalars(select(User).where(User.username == username)).one()
                s.add(ApiToken(token_sha256=token_digest(raw), user_id=user.id, issued_at=now,
                               expires_at=now + TOKEN_TTL))
            self._tokens[username] = raw
        return self._tokens[username]

    def call(self, who: tuple[str, str] | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.token(self.accounts[who[0]][who[1]])}"
        return self.http.request(method, path, headers=headers, **kw)

    def ok(self, who: tuple[str, str], method: str, path: str, status: int, **kw: Any) -> Any:
        r = self.call(who, method, path, **kw)
        assert r.status_code == status, f"{who} {method} {path}: {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None


def _school(bundle: TermBundle, **update: str) -> TermBundle:
    return bundle.model_copy(update={"school": bundle.school.model_copy(update=update)})


def _bundles() -> dict[str, TermBundle]:
    a1 = sample_bundle(seed=5, students=3)
    others = [t.id for t in a1.teachers if t.id not in ("GV001", "GV002", "GV003")]
    a2 = a1.model_copy(update={
        "class_": ClassInfo(name="7A2", grade=7, homeroom_teacher_id="GV004"),
        "assignments": [Assignment(subject=a.subject, teacher_id=others[i % len(others)])
                        for i, a in enumerate(a1.assignments)],
        "students": sample_bundle(seed=6, students=1).students})
    b1 = _school(a1, code="LC-THCS-002", name="Trường THCS Bát Xát",
                 district="Phòng Giáo dục và Đào tạo huyện Bát Xát", address="Thị trấn Bát Xát")
    b1 = b1.model_copy(update={"students": sample_bundle(seed=7, students=1).students})
    c1 = _school(a1, code="YB-THCS-001", name="Trường THCS Nguyễn Du",
                 district="Phòng Giáo dục và Đào tạo thành phố Yên Bái",
                 province="Sở Giáo dục và Đào tạo Yên Bái", address="Phường Đồng Tâm, thành phố Yên Bái")
    codes = [s.code for b in (a1, a2) for s in b.students]
    assert len(set(codes)) == len(codes)
    return {"A1": a1, "A2": a2, "B1": b1, "C1": c1}


def _steps(m: Matrix, record_id: str) -> dict[str, int]:
    doc = m.ok(("A", "GV001"), "GET", f"{API}/documents/{record_id}", 200)
    by_name = {s["field_name"]: s["step_id"] for s in doc["revisions"][-1]["steps"]}
    return {"seal": by_name["seal"], "TOAN": by_name["subject_TOAN"],
            "NGU_VAN": by_name["subject_NGU_VAN"], "homeroom": by_name["homeroom"],
            "principal": by_name["principal"]}


def _import_lock_render(m: Matrix, school: str, bundle: TermBundle) -> tuple[int, list[str]]:
    b = m.ok((school, "GV001"), "POST", f"{API}/bundles", 201, json=bundle_json(bundle))
    m.ok((school, "GV001"), "POST", f"{API}/bundles/{b['id']}/lock", 200)
    revs = m.ok((school, "GV001"), "POST", f"{API}/bundles/{b['id']}/render", 202)
    return b["id"], sorted(r["record_id"] for r in revs)


def _sign_fully(m: Matrix, world: Any, bundle: TermBundle, record_id: str) -> None:
    """Every person's field of one record, in the plan's order, each with that person's key."""
    teacher_of = {f"subject_{a.subject}": a.teacher_id for a in bundle.assignments}
    teacher_of |= {"homeroom": bundle.class_.homeroom_teacher_id, "principal": bundle.school.principal_id}
    while True:
        doc = m.ok(("A", "GV001"), "GET", f"{API}/documents/{record_id}", 200)
        rev = doc["revisions"][-1]
        if rev["state"] not in ("certified", "signing"):
            assert rev["state"] == "archived", rev
            return
        for step in [s for s in rev["steps"] if s["state"] == "waiting" and s["stage"] == rev["stage"]]:
            who = ("A", teacher_of[step["field_name"]])
            key = world.key(who[1])
            prepared = m.ok(who, "POST", f"{API}/signatures/{step['step_id']}/prepare", 200, json={
                "certificate": base64.b64encode(key.cert.dump()).decode(),
                "chain": [base64.b64encode(c.dump()).decode() for c in key.chain]})
            value = sign_value(key, base64.b64decode(prepared["to_be_signed"]))
            m.ok(who, "POST", f"{API}/signatures/preparations/{prepared['id']}/complete", 200,
                 json={"signature_value": base64.b64encode(value).decode()})


def _far_window(**where: int) -> dict[str, Any]:
    opens = datetime.now(UTC) + timedelta(days=1500)
    return {"kind": "data_entry", "school_year": FAR_YEAR, "term": "CN", "opens_at": opens.isoformat(),
            "closes_at": (opens + timedelta(days=30)).isoformat(), **where}


@pytest.fixture(scope="module")
def matrix(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:  # type: ignore[no-untyped-def]
    bundles = _bundles()
    svc = build_service(world.pki, bundles["A1"], tmp_path_factory.mktemp("matrix"))
    accounts: dict[str, dict[str, str]] = {}
    with svc.sessions() as s, s.begin():
        # A's accounts exist already (build_service); provisioning 7A2 returns them all.
        for placement, key in (("A", "A2"), ("B", "B1"), ("C", "C1")):
            users = provision_school(s, bundles[key], password=PASSWORD)
            accounts[placement] = {k: u.username for k, u in users.items()}
        school = s.scalars(select(OrgUnit).where(OrgUnit.code == bundles["A1"].school.code)).one()
        units = {"school": school.id, "district": school.parent_id}
        district = s.get(OrgUnit, school.parent_id)
        assert district is not None and district.kind is OrgUnitKind.DISTRICT
        units["province"] = district.parent_id  # type: ignore[assignment]
    assert accounts["A"]["so"] == accounts["B"]["so"] != accounts["C"]["so"]
    assert accounts["A"]["phong"] != accounts["B"]["phong"]
    b1 = bundles["B1"]
    open_windows(svc.sessions, b1.school.code, b1.school_year, b1.term)
    with serve_app(svc.app) as url, httpx.Client(base_url=url, timeout=120) as http:
        svc.url = url
        m = Matrix(svc, http, accounts, units, {})
        # School A, 7A1: three records, certified by the school's seal; the last one signed by
        # everyone and archived. 7A2: one record, rendered, waiting for the seal. B: rendered.
        home_bundle, home_records = _import_lock_render(m, "A", bundles["A1"])
        m.ok(("A", "qtht"), "POST", f"{API}/bundles/{home_bundle}/seal", 202)
        other_bundle, other_records = _import_lock_render(m, "A", bundles["A2"])
        _, b_records = _import_lock_render(m, "B", b1)
        m.records = {"A1": set(home_records), "A2": set(other_records), "B1": set(b_records)}
        _sign_fully(m, world, bundles["A1"], home_records[2])
        m.archived = {home_records[2]}
        found = m.ok(("A", "vanthu"), "GET", f"{API}/archive/records", 200)
        assert [e["record_id"] for e in found] == [home_records[2]]
        with svc.sessions() as s:
            m.class_ids = {key: s.scalars(
                select(SchoolClass.id).join(OrgUnit, OrgUnit.id == SchoolClass.school_id)
                .where(OrgUnit.code == bundles[key].school.code,
                       SchoolClass.name == bundles[key].class_.name)).one() for key in ("A1", "A2", "B1")}

        def correction(who: tuple[str, str], record_id: str) -> int:
            return int(m.ok(who, "POST", f"{API}/corrections", 201,
                            json={"record_id": record_id, "reason": "Sai điểm kiểm tra giữa kỳ"})["id"])

        def window(who: tuple[str, str], **where: int) -> int:
            return int(m.ok(who, "POST", f"{API}/windows", 201, json=_far_window(**where))["id"])

        m.targets["home"] = Targets(
            bundle=bundle_json(bundles["A1"]), bundle_id=home_bundle, class_id=m.class_ids["A1"],
            record_id=home_records[0], steps=_steps(m, home_records[0]),
            reject_steps=_steps(m, home_records[1]),
            correction_id=correction(("A", "GV002"), home_records[0]),
            refusable_id=correction(("A", "GV002"), home_records[0]),
            class_window_id=window(("A", "qtht"), class_id=m.class_ids["A1"]),
            archive_sha=found[0]["sha256"])
        m.targets["other"] = Targets(
            bundle=bundle_json(bundles["A2"]), bundle_id=other_bundle, class_id=m.class_ids["A2"],
            # 7A2's one record serves reject too: nobody in the matrix may reject a field of it
            # that is open (the seal's is signed or not yet signable, the principal's not yet open).
            record_id=other_records[0], steps=_steps(m, other_records[0]),
            reject_steps=_steps(m, other_records[0]),
            correction_id=correction(("A", "GV001"), other_records[0]),
            refusable_id=correction(("A", "GV001"), other_records[0]),
            class_window_id=window(("A", "qtht"), class_id=m.class_ids["A2"]))
        m.unit_windows = {"school": window(("A", "qtht"), unit_id=units["school"]),
                          "district": window(("A", "phong"), unit_id=units["district"])}
        # GV003's own preparation of their Toán field (the real certificate): what "complete" targets.
        key = world.key("GV003")
        prepared = m.ok(("A", "GV003"), "POST", f"{API}/signatures/{m.targets['home'].steps['TOAN']}/prepare",
                        200, json={"certificate": base64.b64encode(key.cert.dump()).decode(),
                                   "chain": [base64.b64encode(c.dump()).decode() for c in key.chain]})
        m.targets["home"].preparation_id = prepared["id"]
        with svc.sessions() as s, s.begin():
            gv003 = s.scalars(select(User.id).where(User.username == m.accounts["A"]["GV003"])).one()
            now = datetime.now(UTC)
            s.add(RemoteApproval(id="a" * 32, provider="matrix", user_id=gv003, account="0790",
                                 cert_fingerprint="0" * 64, state=ApprovalState.PENDING, created_at=now,
                                 expires_at=now + timedelta(days=1), next_poll_at=now + timedelta(days=1),
                                 poll_attempts=0))
        for t in m.targets.values():
            t.approval_id, t.user_id = "a" * 32, gv003
        yield m
    svc.ctx.close()


# --------------------------------------------------------------------------------------------
# The requests
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Req:
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _wrong_certificate(m: Matrix) -> str:
    # GV011's certificate: bound, but never to any account in the matrix.
    return base64.b64encode(m.service.pki.identity("GV011").cert.dump()).decode()


def _prepare(kind: str) -> Callable[[Matrix, Targets], Req]:
    return lambda m, t: Req("POST", f"{API}/signatures/{t.steps[kind]}/prepare",
                            json={"certificate": _wrong_certificate(m), "chain": []})


def _reject(kind: str) -> Callable[[Matrix, Targets], Req]:
    return lambda m, t: Req("POST", f"{API}/signatures/{t.reject_steps[kind]}/reject",
                            json={"reason": "Điểm môn học chưa khớp sổ điểm"})


def _progress(level: str) -> Callable[[Matrix, Targets], Req]:
    if level == "class":
        return lambda m, t: Req("GET", f"{API}/progress?class_id={t.class_id}")
    return lambda m, t: Req("GET", f"{API}/progress?unit_id={m.units[level]}")


def _open_window(level: str) -> Callable[[Matrix, Targets], Req]:
    if level == "class":
        return lambda m, t: Req("POST", f"{API}/windows", json=_far_window(class_id=t.class_id))
    return lambda m, t: Req("POST", f"{API}/windows", json=_far_window(unit_id=m.units[level]))


def _close_window(level: str) -> Callable[[Matrix, Targets], Req]:
    if level == "class":
        return lambda m, t: Req("POST", f"{API}/windows/{t.class_window_id}/close")
    return lambda m, t: Req("POST", f"{API}/windows/{m.unit_windows[level]}/close")


REQUESTS: dict[str, Callable[[Matrix, Targets], Req]] = {
    "import_bundle": lambda m, t: Req("POST", f"{API}/bundles", json=t.bundle),
    "lock_bundle": lambda m, t: Req("POST", f"{API}/bundles/{t.bundle_id}/lock"),
    "render_bundle": lambda m, t: Req("POST", f"{API}/bundles/{t.bundle_id}/render"),
    "seal_bundle": lambda m, t: Req("POST", f"{API}/bundles/{t.bundle_id}/seal"),
    "get_document": lambda m, t: Req("GET", f"{API}/documents/{t.record_id}"),
    **{f"prepare:{k}": _prepare(k) for k in STEP_KINDS},
    "complete": lambda m, t: Req("POST", f"{API}/signatures/preparations/{t.preparation_id}/complete",
                                 json={"signature_value": base64.b64encode(b"\x01" * 256).decode()}),
    **{f"reject:{k}": _reject(k) for k in STEP_KINDS},
    # A blank reason is refused only after the permission check: otherwise the answer (422
    # rather than 404) would tell an outsider that the field exists.
    "reject:blank": lambda m, t: Req("POST", f"{API}/signatures/{t.reject_steps['TOAN']}/reject",
                                     json={"reason": " "}),
    "request_correction": lambda m, t: Req("POST", f"{API}/corrections",
                                           json={"record_id": t.record_id, "reason": "Sai ngày sinh"}),
    "approve_correction": lambda m, t: Req("POST", f"{API}/corrections/{t.correction_id}/approve",
                                           json={"witnesses": [], "note": "Đồng ý"}),
    "refuse_correction": lambda m, t: Req("POST", f"{API}/corrections/{t.refusable_id}/refuse",
                                          json={"note": "Không có căn cứ"}),
    "apply_correction": lambda m, t: Req("POST", f"{API}/corrections/{t.correction_id}/apply", json={}),
    **{f"open_window:{k}": _open_window(k) for k in ("province", "district", "school", "class")},
    **{f"close_window:{k}": _close_window(k) for k in ("district", "school", "class")},
    **{f"progress:{k}": _progress(k) for k in ("province", "district", "school", "class")},
    "archive_pdf": lambda m, t: Req("GET", f"{API}/archive/records/{t.archive_sha}/pdf"),
    "archive_report": lambda m, t: Req("GET", f"{API}/archive/records/{t.archive_sha}/report"),
    "verify": lambda m, t: Req("POST", f"{API}/verify", content=b"not a PDF",
                               headers={"Content-Type": "application/pdf"}),
    # Remote batches act only on the caller's own waiting fields (each field's scope is checked
    # as it is prepared; tests/remote): with no provider account the answer is 422 for anyone.
    "remote_providers": lambda m, t: Req("GET", f"{API}/remote/providers"),
    "remote_csc": lambda m, t: Req("POST", f"{API}/signatures/remote/csc",
                                   json={"provider": "matrix", "pin": "0000", "step_ids": [t.steps["TOAN"]]}),
    "remote_approval": lambda m, t: Req("GET", f"{API}/signatures/remote/approvals/{t.approval_id}"),
    "link_remote_account": lambda m, t: Req("PUT", f"{API}/users/{t.user_id}/remote-accounts/matrix",
                                            json={"account": "079000000001"}),
    # A key too weak to register, and a withdrawal without a reason: refused (422) only after
    # the permission check, so that the allowed cells change nothing.
    "bind_certificate": lambda m, t: Req("POST", f"{API}/users/{t.user_id}/certificates", json={
        "certificate": base64.b64encode(m.service.pki.identity("weak_rsa").cert.dump()).decode()}),
    "withdraw_certificate": lambda m, t: Req(
        "POST", f"{API}/certificates/{m.service.pki.identity('GV003').fingerprint_sha256}/withdraw",
        json={"reason": " "}),
}

FORBIDDEN_CODES = {"role_lacks_action", "outside_assignment"}


def send(m: Matrix, who: tuple[str, str] | None, req: Req) -> httpx.Response:
    kw: dict[str, Any] = {"headers": req.headers}
    if req.json is not None:
        kw["json"] = req.json
    if req.content is not None:
        kw["content"] = req.content
    return m.call(who, req.method, req.path, **kw)


def assert_answer(r: httpx.Response, expected: str, what: str) -> None:
    said = f"{what}: expected {expected}, got {r.status_code} {r.text[:400]}"
    if expected == "ok":
        assert r.status_code < 500 and r.status_code not in (401, 403, 404), said
        if r.status_code >= 400:  # refused by the service after the permission check, not by a schema
            assert "error" in r.json(), said
        return
    assert r.status_code == int(expected), said
    if expected == "403":
        assert r.json()["error"] in FORBIDDEN_CODES, said


CASES = [pytest.param(scope, name, role, id=f"{scope}-{name}-{role}")
         for scope, (_, _, expected) in SCOPES.items() for name in expected for role in ROLES]


@pytest.mark.parametrize(("scope", "name", "role"), CASES)
def test_permission(matrix: Matrix, scope: str, name: str, role: str) -> None:
    placement, targets, expected = SCOPES[scope]
    req = REQUESTS[name](matrix, matrix.targets[targets])
    assert_answer(send(matrix, (placement, role), req), expected[name][role],
                  f"{role}@{placement} {req.method} {req.path}")


# --------------------------------------------------------------------------------------------
# Lists: filtered by scope, never refused
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("placement", "role"),
                         [pytest.param(p, r, id=f"{r}@{p}") for p in LISTS for r in ROLES])
def test_lists_show_only_what_the_caller_may_see(matrix: Matrix, placement: str, role: str) -> None:
    cell = LISTS[placement][role]
    classes = set() if cell == "–" else set(cell.split("+"))
    visible = set().union(*(matrix.records[c] for c in classes))
    who = (placement, role)

    docs = matrix.ok(who, "GET", f"{API}/documents", 200, params={"limit": 500})
    assert {d["record_id"] for d in docs} == visible
    for c, class_id in matrix.class_ids.items():  # asking for a class one cannot see: an empty list
        docs = matrix.ok(who, "GET", f"{API}/documents", 200, params={"class_id": class_id})
        assert {d["record_id"] for d in docs} == (matrix.records[c] if c in classes else set()), c

    found = matrix.ok(who, "GET", f"{API}/archive/records", 200)
    assert {e["record_id"] for e in found} == matrix.archived & visible

    pending = matrix.ok(who, "GET", f"{API}/signatures/pending", 200)
    assert {p["record_id"] for p in pending} <= visible
    if role in ("so", "phong", "qtht", "vanthu"):
        assert pending == []  # they sign nothing (the seal is the server's)
    home = matrix.targets["home"].record_id
    fields = {(p["record_id"], p["field_name"]) for p in pending}
    if placement == "A" and role == "GV002":
        assert {(home, "subject_NGU_VAN"), (home, "subject_HDTN_HN")} <= fields
        assert all(f.startswith("subject_") for _, f in fields)  # the homeroom field is not open yet
    if placement == "A" and role == "GV003":
        assert {(home, "subject_TOAN"), (home, "subject_GDDP")} <= fields


# --------------------------------------------------------------------------------------------
# No sign-in: 401 everywhere but the public page
# --------------------------------------------------------------------------------------------
UNSCOPED = {
    "list_documents": lambda m, t: Req("GET", f"{API}/documents"),
    "pending": lambda m, t: Req("GET", f"{API}/signatures/pending"),
    "search_archive": lambda m, t: Req("GET", f"{API}/archive/records"),
    "logout": lambda m, t: Req("POST", f"{API}/auth/logout"),
}


@pytest.mark.parametrize("name", [*REQUESTS, *UNSCOPED])
def test_no_sign_in_is_401(matrix: Matrix, name: str) -> None:
    req = {**REQUESTS, **UNSCOPED}[name](matrix, matrix.targets["home"])
    for token in (None, "not-a-token"):
        headers = dict(req.headers)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        r = send(matrix, None, Req(req.method, req.path, req.json, req.content, headers))
        assert r.status_code == 401, f"{name} with token {token!r}: {r.status_code} {r.text[:300]}"
        assert r.headers.get("WWW-Authenticate") == "Bearer"


# --------------------------------------------------------------------------------------------
# The public page behind the QR code: no sign-in, archived records only
# --------------------------------------------------------------------------------------------
def test_public_page_needs_no_sign_in_and_shows_only_archived_records(matrix: Matrix) -> None:
    (archived,) = matrix.archived
    unarchived = [matrix.targets["home"].record_id, matrix.targets["other"].record_id,
                  *matrix.records["B1"], "hoc_ba_thcs.LC-THCS-001.2025-2026.CN.KHONG-CO"]
    for who in (None, ("C", "GV003")):  # a stranger's token changes nothing
        for path in ("/v/{}", f"{API}/public/records/{{}}"):
            r = matrix.call(who, "GET", path.format(archived))
            assert r.status_code == 200, r.text
            for record_id in unarchived:
                assert matrix.call(who, "GET", path.format(record_id)).status_code == 404, record_id
