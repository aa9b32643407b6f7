"""The scope rules: every role × every action × targets in and out of scope, on both databases.

The expectations below are written out by hand from the regulation (Điều 4–14, see
``hsdt/db/scope.py``), not computed from the rule table, so that a change to the table that
changes an answer shows up here as a failing case. One letter per role, in the order
prov dist sadm prin home subj clerk: A = allowed (200), F = forbidden (403),
N = not visible (404).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from hsdt.db.models import LockWindow, RoleAssignment, SchoolClass, User, WindowKind
from hsdt.db.scope import (
    RULES,
    Action,
    Decision,
    Outcome,
    Target,
    can,
    covered_unit_ids,
    open_window,
    target_of,
    visible_class_ids,
    visible_documents,
)
from hsdt.domain.schema import Term

from .db_world import ROLE_USERS, T0, YEAR, World, build_world

LETTER = {"A": Outcome.ALLOWED, "F": Outcome.FORBIDDEN, "N": Outcome.NOT_VISIBLE}

SIGNING = [
    ("step:seal", "FFAAFFF"),
    ("step:subject", "FFFFFAF"),
    ("step:other_subject", "FFFFFFF"),  # NGU_VAN, assigned to another teacher
    ("step:untaught_subject", "FFFFFFF"),  # assigned to subj, who does not teach GDCD
    ("step:homeroom", "FFFFAFF"),
    ("step:principal", "FFFAFFF"),
    ("step:subject@other", "FFFFNNF"),  # 7A2: assigned to subj, who does not teach there
    ("step:homeroom@other", "FFFFNNF"),  # 7A2's homeroom field, assigned to home by mistake
    ("step:seal@other_school", "FFNNNNN"),
    ("step:principal@other_school", "FFNNNNN"),  # another school's field assigned to our principal
    ("step:subject@far", "FNNNNNN"),  # subj even has a teaching row there, but no role in S3
]

EXPECTED: dict[Action, list[tuple[str, str]]] = {
    Action.READ_RECORD: [
        ("document:own", "AAAAAAA"),
        ("document:other", "AAAANNA"),
        ("document:other_school", "AANNNNN"),
        ("document:far", "ANNNNNN"),
        ("class:own", "AAAAAAA"),
    ],
    Action.READ_PROGRESS: [
        ("unit:province", "AFFFFFF"),
        ("unit:district", "AAFFFFF"),
        ("unit:other_district", "ANNNNNN"),
        ("unit:school", "AAAAFFA"),
        ("unit:other_school", "AANNNNN"),
        ("class:own", "AAAAAAA"),
        ("class:other", "AAAANNA"),
    ],
    Action.IMPORT_BUNDLE: [
        ("class:own", "FFAAAFF"),
        ("class:other", "FFAANNF"),
        ("class:other_school", "FFNNNNN"),
        ("class:far", "FNNNNNN"),
    ],
    Action.LOCK_BUNDLE: [
        ("bundle:own", "FFAAFFF"),
        ("bundle:other", "FFAANNF"),
        ("bundle:other_school", "FFNNNNN"),
        ("bundle:far", "FNNNNNN"),
    ],
    Action.SIGN_FIELD: SIGNING,
    Action.REJECT_FIELD: SIGNING,
    Action.REQUEST_CORRECTION: [
        ("document:own", "FFFAAAF"),
        ("document:other", "FFFANNF"),
        ("document:other_school", "FFNNNNN"),
        ("document:far", "FNNNNNN"),
    ],
    Action.APPROVE_CORRECTION: [
        ("correction:own", "FFFAFFF"),
        ("correction:other", "FFFANNF"),
        ("correction:other_school", "FFNNNNN"),
        ("correction:far", "FNNNNNN"),
    ],
    Action.WITNESS_CORRECTION: [
        ("correction:own", "FFAFAFF"),
        ("correction:other", "FFAFNNF"),
        ("correction:other_school", "FFNNNNN"),
    ],
    Action.LOCK_WINDOW: [
        ("unit:province", "AFFFFFF"),
        ("unit:district", "AAFFFFF"),
        ("unit:school", "AAAAFFF"),
        ("class:own", "AAAAFFF"),
        ("unit:other_school", "AANNNNN"),
        ("unit:far_school", "ANNNNNN"),
    ],
    Action.ISSUE_RECORD: [
        ("document:own", "FFFAFFF"),
        ("document:other", "FFFANNF"),
        ("document:other_school", "FFNNNNN"),
    ],
    Action.MANAGE_USERS: [
        ("unit:school", "AAAFFFF"),
        ("unit:district", "AAFFFFF"),
        ("unit:other_school", "AANNNNN"),
        ("unit:far_school", "ANNNNNN"),
    ],
    Action.BIND_CERTIFICATE: [
        ("unit:school", "AAAFFFF"),
        ("unit:other_school", "AANNNNN"),
    ],
    Action.READ_AUDIT: [
        ("unit:province", "AFFFFFF"),
        ("unit:district", "AAFFFFF"),
        ("unit:school", "AAAAFFF"),
        ("unit:other_school", "AANNNNN"),
    ],
}

CASES = [
    pytest.param(action, target, user, LETTER[letters[i]], id=f"{action}-{target}-{user}")
    for action, rows in EXPECTED.items()
    for target, letters in rows
    for i, user in enumerate(ROLE_USERS)
]


@dataclass
class ScopeDB:
    factory: sessionmaker[Session]
    world: World
    targets: dict[str, Target]


@pytest.fixture(scope="module")
def scope_db(engine: Engine) -> Iterator[ScopeDB]:
    """The world, built once per backend inside a transaction that is rolled back at the end."""
    conn = engine.connect()
    outer = conn.begin()
    factory = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    with factory() as session:
        world = build_world(session)
        objects = {
            **{f"unit:{k}": v for k, v in world.units.items()},
            **{f"class:{k}": v for k, v in world.classes.items()},
            **{f"bundle:{k}": v for k, v in world.bundles.items()},
            **{f"document:{k}": v for k, v in world.documents.items()},
            **{f"correction:{k}": v for k, v in world.corrections.items()},
            **{f"step:{k}": v for k, v in world.steps.items()},
        }
        targets = {name: target_of(session, obj) for name, obj in objects.items()}
        session.commit()
    try:
        yield ScopeDB(factory, world, targets)
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def db(scope_db: ScopeDB) -> Iterator[tuple[Session, ScopeDB]]:
    with scope_db.factory() as session:
        yield session, scope_db
        session.rollback()


def test_every_action_has_expectations() -> None:
    assert set(EXPECTED) == set(Action) == set(RULES)


@pytest.mark.parametrize(("action", "target", "user", "expected"), CASES)
def test_matrix(db: tuple[Session, ScopeDB], action: Action, target: str, user: str,
                expected: Outcome) -> None:
    session, sdb = db
    decision = can(session, sdb.world.users[user], action, sdb.targets[target])
    assert decision.outcome is expected, decision
    assert decision.http_status == {Outcome.ALLOWED: 200, Outcome.FORBIDDEN: 403,
                                    Outcome.NOT_VISIBLE: 404}[expected]


def test_decision_is_not_a_boolean(db: tuple[Session, ScopeDB]) -> None:
    session, sdb = db
    decision = can(session, sdb.world.users["clerk"], Action.SIGN_FIELD, sdb.targets["step:seal"])
    with pytest.raises(TypeError):
        bool(decision)
    assert not decision.allowed
    assert decision.code == "role_lacks_action"
    assert "không có quyền" in decision.message


def test_allowed_names_the_role(db: tuple[Session, ScopeDB]) -> None:
    session, sdb = db
    decision: Decision = can(session, sdb.world.users["subj"], "sign_field", sdb.targets["step:subject"])
    assert decision.allowed and decision.role == "subject_teacher"


def test_revoked_role_and_inactive_account_see_nothing(db: tuple[Session, ScopeDB]) -> None:
    session, sdb = db
    prin = session.get(User, sdb.world.users["prin"].id)
    assert prin is not None
    target = sdb.targets["document:own"]
    assert can(session, prin, Action.READ_RECORD, target).allowed
    grant = session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == prin.id)).one()
    grant.revoked_at = T0
    session.flush()
    assert can(session, prin, Action.READ_RECORD, target).outcome is Outcome.NOT_VISIBLE
    grant.revoked_at = None
    prin.is_active = False
    session.flush()
    assert can(session, prin, Action.READ_RECORD, target).outcome is Outcome.NOT_VISIBLE


def test_roles_add_up(db: tuple[Session, ScopeDB]) -> None:
    """other_t teaches NGU_VAN in 7A1 and leads 7A2: both fields are theirs, nothing else."""
    session, sdb = db
    other_t = sdb.world.users["other_t"]
    assert can(session, other_t, Action.SIGN_FIELD, sdb.targets["step:other_subject"]).allowed
    assert can(session, other_t, Action.SIGN_FIELD, sdb.targets["step:homeroom@other"]).outcome \
        is Outcome.FORBIDDEN  # 7A2's homeroom field is (wrongly) assigned to home, not other_t
    assert can(session, other_t, Action.SIGN_FIELD, sdb.targets["step:subject"]).outcome is Outcome.FORBIDDEN
    assert can(session, other_t, Action.READ_RECORD, sdb.targets["document:other"]).allowed
    assert can(session, other_t, Action.READ_RECORD, sdb.targets["document:other_school"]).outcome \
        is Outcome.NOT_VISIBLE


def test_covered_units(db: tuple[Session, ScopeDB]) -> None:
    session, sdb = db
    u, users = sdb.world.units, sdb.world.users
    ids = {k: v.id for k, v in u.items()}
    assert covered_unit_ids(session, users["prov"]) == set(ids.values())
    assert covered_unit_ids(session, users["dist"]) == {ids["district"], ids["school"], ids["other_school"]}
    assert covered_unit_ids(session, users["prin"]) == {ids["school"]}
    assert covered_unit_ids(session, users["subj"]) == set()


def test_visible_classes(db: tuple[Session, ScopeDB]) -> None:
    session, sdb = db
    c, users = sdb.world.classes, sdb.world.users
    assert visible_class_ids(session, users["subj"]) == {c["own"].id}
    assert visible_class_ids(session, users["home"]) == {c["own"].id}
    assert visible_class_ids(session, users["clerk"]) == {c["own"].id, c["other"].id}
    assert visible_class_ids(session, users["dist"]) == {c["own"].id, c["other"].id, c["other_school"].id}


@pytest.mark.parametrize("user", [*ROLE_USERS, "other_t", "prin3"])
def test_listing_agrees_with_can(db: tuple[Session, ScopeDB], user: str) -> None:
    """The list query the API pages through shows exactly what can(read_record) allows."""
    session, sdb = db
    who = sdb.world.users[user]
    listed = {d.id for d in session.scalars(visible_documents(who))}
    allowed = {d.id for d in sdb.world.documents.values()
               if can(session, who, Action.READ_RECORD, target_of(session, d)).allowed}
    assert listed == allowed


def test_open_window(db: tuple[Session, ScopeDB]) -> None:
    session, sdb = db
    w = sdb.world
    own = session.get(SchoolClass, w.classes["own"].id)
    far = session.get(SchoolClass, w.classes["far"].id)
    assert own is not None and far is not None
    day = timedelta(days=1)
    assert open_window(session, WindowKind.SIGNING, own, Term.CN, T0) is None
    district_window = LockWindow(kind=WindowKind.SIGNING, org_unit_id=w.units["district"].id,
                                 school_year=YEAR, term=Term.CN, opens_at=T0 - day, closes_at=T0 + day,
                                 created_by_id=w.users["dist"].id)
    class_window = LockWindow(kind=WindowKind.DATA_ENTRY, class_id=own.id, school_year=YEAR, term=Term.CN,
                              opens_at=T0 + day, closes_at=T0 + 3 * day)
    session.add_all([district_window, class_window])
    session.flush()
    assert open_window(session, WindowKind.SIGNING, own, Term.CN, T0) is district_window
    assert open_window(session, WindowKind.SIGNING, own, Term.CN, T0 + day) is None  # closes_at excluded
    assert open_window(session, WindowKind.SIGNING, own, Term.HK1, T0) is None
    assert open_window(session, WindowKind.SIGNING, far, Term.CN, T0) is None  # another district
    assert open_window(session, WindowKind.DATA_ENTRY, own, Term.CN, T0) is None
    assert open_window(session, WindowKind.DATA_ENTRY, own, Term.CN, T0 + 2 * day) is class_window
    expected_target = Target(own.school_id, own.id, label=f"window:{class_window.id}")
    assert target_of(session, class_window) == expected_target
    assert can(session, w.users["home"], Action.LOCK_WINDOW, target_of(session, class_window)).outcome \
        is Outcome.FORBIDDEN
