"""Sign-in rules on real SQLite and PostgreSQL: passwords, tokens, lock-out, audit entries.

Most tests use the rolled-back ``session`` of the database tests; the two that are about what
is *committed* (the failure counter of a refused attempt, concurrent guesses) use a database
of their own and real commits.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hsdt.api.auth import (
    LOCKOUT,
    MAX_FAILURES,
    TOKEN_TTL,
    AuthError,
    IssuedToken,
    PasswordRejected,
    authenticate,
    hash_password,
    set_password,
    sign_in,
    sign_out,
    token_digest,
    verify_password,
    vn_time,
)
from hsdt.db.engine import make_engine, session_factory
from hsdt.db.logs import AuditEntry
from hsdt.db.migrate import upgrade
from hsdt.db.people import ApiToken, User

from .conftest import BACKENDS

T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)  # 10:00 ngày 29/11/2026 giờ Việt Nam
PASSWORD = "mật khẩu đúng 2026"
WRONG = "mat khau sai 2026"
IP = "203.0.113.9"


def make_user(session: Session, username: str = "gv.lan", password: str = PASSWORD, *,
              active: bool = True) -> User:
    user = User(username=username, full_name="Nguyễn Thị Lan", is_active=active)
    session.add(user)
    session.flush()
    set_password(session, user, password)
    return user


def refused(session: Session, username: str, password: str, *, now: datetime,
            ip: str | None = IP) -> AuthError:
    with pytest.raises(AuthError) as info:
        sign_in(session, username, password, ip=ip, now=now)
    return info.value


def sign_in_entries(session: Session) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(AuditEntry.action == "sign_in")
                                .order_by(AuditEntry.id)))


# --------------------------------------------------------------------------------------------
# Passwords
# --------------------------------------------------------------------------------------------
def test_password_hash_is_argon2_and_never_the_password(session: Session) -> None:
    user = make_user(session)
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert hash_password(PASSWORD) != hash_password(PASSWORD)  # salted
    assert verify_password(user.password_hash, PASSWORD)
    assert not verify_password(user.password_hash, WRONG)
    assert not verify_password("not a hash", PASSWORD)


def test_short_passwords_are_refused_and_nothing_changes(session: Session) -> None:
    user = make_user(session)
    before = user.password_hash
    with pytest.raises(PasswordRejected) as info:
        set_password(session, user, "123456789")
    assert info.value.code == "password_too_short" and info.value.status == 422
    assert "ít nhất 10 ký tự" in info.value.message and "có 9" in info.value.message
    assert user.password_hash == before
    set_password(session, user, "1234567890")  # exactly ten is enough
    assert verify_password(user.password_hash or "", "1234567890")


def test_vietnamese_password_typed_decomposed_still_signs_in(session: Session) -> None:
    """Unikey's "tổ hợp" mode types NFD; a phone types NFC. Either must work."""
    make_user(session, password=unicodedata.normalize("NFD", PASSWORD))
    nfc = unicodedata.normalize("NFC", PASSWORD)
    assert nfc != unicodedata.normalize("NFD", PASSWORD)
    assert sign_in(session, "gv.lan", nfc, ip=IP, now=T0).token


def test_outdated_hash_is_upgraded_on_successful_sign_in(session: Session) -> None:
    user = make_user(session)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    user.password_hash = weak
    session.flush()
    sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    assert user.password_hash != weak
    assert not PasswordHasher().check_needs_rehash(user.password_hash or "")
    assert verify_password(user.password_hash or "", PASSWORD)


# --------------------------------------------------------------------------------------------
# Sign-in and tokens
# --------------------------------------------------------------------------------------------
def test_good_sign_in_gives_a_token_that_authenticates(session: Session) -> None:
    user = make_user(session)
    issued = sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    assert isinstance(issued, IssuedToken)
    assert issued.user_id == user.id and issued.expires_at == T0 + TOKEN_TTL
    assert issued.expires_at - T0 == timedelta(minutes=30)  # short-lived by contract
    assert issued.token not in repr(issued)
    assert authenticate(session, issued.token, now=T0 + timedelta(minutes=1)) is user
    with pytest.raises(AuthError) as info:
        authenticate(session, issued.token + "x", now=T0)
    assert (info.value.code, info.value.status) == ("token_invalid", 401)


def test_token_is_stored_only_as_its_sha256(session: Session) -> None:
    make_user(session)
    issued = sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    assert len(issued.token) >= 43
    row = session.scalars(select(ApiToken)).one()
    assert row.token_sha256 == hashlib.sha256(issued.token.encode()).hexdigest() == token_digest(issued.token)
    assert row.ip == IP and row.issued_at == T0
    raw_rows = session.execute(select(ApiToken.__table__)).all()
    assert raw_rows and all(issued.token not in str(value) for r in raw_rows for value in r)


def test_expired_token_is_refused(session: Session) -> None:
    make_user(session)
    issued = sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    authenticate(session, issued.token, now=T0 + TOKEN_TTL - timedelta(seconds=1))
    with pytest.raises(AuthError) as info:
        authenticate(session, issued.token, now=T0 + TOKEN_TTL)
    assert (info.value.code, info.value.status) == ("token_expired", 401)
    assert "hết hạn" in info.value.message and "đăng nhập lại" in info.value.message


def test_signed_out_token_is_refused(session: Session) -> None:
    make_user(session)
    issued = sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    other = sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    sign_out(session, issued.token, ip=IP, now=T0 + timedelta(minutes=2))
    sign_out(session, issued.token, ip=IP, now=T0 + timedelta(minutes=3))  # twice is harmless
    with pytest.raises(AuthError) as info:
        authenticate(session, issued.token, now=T0 + timedelta(minutes=4))
    assert (info.value.code, info.value.status) == ("token_invalid", 401)
    assert authenticate(session, other.token, now=T0 + timedelta(minutes=4))  # only that one
    row = session.scalars(select(ApiToken).where(ApiToken.token_sha256 == token_digest(issued.token))).one()
    assert row.revoked_at == T0 + timedelta(minutes=2)
    outs = session.scalars(select(AuditEntry).where(AuditEntry.action == "sign_out")).all()
    assert [(e.actor, e.object_id) for e in outs] == [("gv.lan", str(row.id))]
    with pytest.raises(AuthError):
        sign_out(session, "không-phải-token", now=T0)


def test_password_change_revokes_tokens_and_lifts_the_lock(session: Session) -> None:
    user = make_user(session)
    issued = sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    for _ in range(MAX_FAILURES):
        refused(session, "gv.lan", WRONG, now=T0)
    assert user.locked_until is not None
    set_password(session, user, "mật khẩu mới hoàn toàn", now=T0 + timedelta(minutes=1))
    assert (user.failed_logins, user.locked_until) == (0, None)
    with pytest.raises(AuthError) as info:
        authenticate(session, issued.token, now=T0 + timedelta(minutes=2))
    assert info.value.code == "token_invalid"
    assert sign_in(session, "gv.lan", "mật khẩu mới hoàn toàn", ip=IP, now=T0 + timedelta(minutes=2))


def test_inactive_user_is_refused(session: Session) -> None:
    user = make_user(session)
    issued = sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    user.is_active = False
    session.flush()
    with pytest.raises(AuthError) as info:
        authenticate(session, issued.token, now=T0 + timedelta(minutes=1))
    assert (info.value.code, info.value.status) == ("token_invalid", 401)
    right = refused(session, "gv.lan", PASSWORD, now=T0)
    assert (right.code, right.status) == ("account_disabled", 403)
    assert "quản trị" in right.message
    # Without the password a stranger learns nothing: the usual "wrong credentials".
    wrong = refused(session, "gv.lan", WRONG, now=T0)
    assert (wrong.code, wrong.status) == ("bad_credentials", 401)
    assert len(session.scalars(select(ApiToken)).all()) == 1  # none issued while disabled


# --------------------------------------------------------------------------------------------
# Wrong passwords, unknown users, lock-out
# --------------------------------------------------------------------------------------------
def test_unknown_user_gets_the_same_answer_as_a_wrong_password(session: Session) -> None:
    make_user(session)
    wrong = refused(session, "gv.lan", WRONG, now=T0)
    unknown = refused(session, "khong.co.ai", WRONG, now=T0)
    assert (unknown.code, unknown.status, unknown.message) == (wrong.code, wrong.status, wrong.message)
    assert wrong.code == "bad_credentials" and wrong.status == 401
    assert unknown.keep_changes and wrong.keep_changes


def test_unknown_user_costs_an_argon2_verification(session: Session) -> None:
    """Without the dummy verification "no such user" answers ~100× faster than a wrong
    password, which tells an attacker which usernames exist."""
    make_user(session)
    refused(session, "khong.co.ai", WRONG, now=T0)  # first call also builds the dummy hash

    def best_of(username: str) -> float:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            refused(session, username, WRONG, now=T0)
            times.append(time.perf_counter() - start)
        return min(times)

    wrong, unknown = best_of("gv.lan"), best_of("khong.co.ai")
    assert unknown > wrong / 3, (unknown, wrong)


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(session: Session) -> None:
    user = make_user(session)
    for attempt in range(1, 5):  # the rule says five, whatever MAX_FAILURES becomes
        error = refused(session, "gv.lan", WRONG, now=T0)
        assert (error.code, error.status) == ("bad_credentials", 401)
        assert user.failed_logins == attempt and user.locked_until is None

    fifth = refused(session, "gv.lan", WRONG, now=T0)
    assert (fifth.code, fifth.status) == ("account_locked", 423)
    assert user.locked_until == fifth.unlocks_at == T0 + timedelta(minutes=15)
    assert fifth.message.startswith(
        "Tài khoản tạm khoá đến 10:15 ngày 29/11/2026 (GMT+7) do nhập sai mật khẩu quá nhiều lần")

    during = T0 + LOCKOUT - timedelta(seconds=1)
    right = refused(session, "gv.lan", PASSWORD, now=during)
    assert (right.code, right.status) == ("account_locked", 423)
    refused(session, "gv.lan", WRONG, now=during)
    assert user.failed_logins == MAX_FAILURES and user.locked_until == T0 + LOCKOUT  # not extended

    issued = sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0 + LOCKOUT)
    assert authenticate(session, issued.token, now=T0 + LOCKOUT) is user
    assert (user.failed_logins, user.locked_until) == (0, None)


def test_lock_runs_out_with_a_fresh_set_of_attempts(session: Session) -> None:
    user = make_user(session)
    for _ in range(MAX_FAILURES):
        refused(session, "gv.lan", WRONG, now=T0)
    after = T0 + LOCKOUT + timedelta(minutes=1)
    error = refused(session, "gv.lan", WRONG, now=after)
    assert error.code == "bad_credentials"
    assert (user.failed_logins, user.locked_until) == (1, None)


def test_only_consecutive_failures_count(session: Session) -> None:
    user = make_user(session)
    for _ in range(MAX_FAILURES - 1):
        refused(session, "gv.lan", WRONG, now=T0)
    sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    assert user.failed_logins == 0
    for _ in range(MAX_FAILURES - 1):
        assert refused(session, "gv.lan", WRONG, now=T0).code == "bad_credentials"
    assert user.locked_until is None


def test_unlock_time_is_shown_in_vietnam_time_rounded_up() -> None:
    assert vn_time(datetime(2026, 11, 29, 3, 15, tzinfo=UTC)) == "10:15 ngày 29/11/2026 (GMT+7)"
    assert vn_time(datetime(2026, 11, 29, 3, 14, 30, tzinfo=UTC)) == "10:15 ngày 29/11/2026 (GMT+7)"
    assert vn_time(datetime(2026, 12, 31, 17, 0, tzinfo=UTC)) == "00:00 ngày 01/01/2027 (GMT+7)"


def test_every_attempt_is_audited(session: Session) -> None:
    user = make_user(session)
    sign_in(session, "gv.lan", PASSWORD, ip=IP, now=T0)
    for _ in range(MAX_FAILURES):
        refused(session, "gv.lan", WRONG, now=T0, ip="198.51.100.4")
    refused(session, "gv.lan", PASSWORD, now=T0, ip="198.51.100.5")
    refused(session, "nguoi.la", WRONG, now=T0, ip=None)

    entries = sign_in_entries(session)
    assert [(e.outcome, e.ip) for e in entries] == (
        [("ok", IP)] + [("refused", "198.51.100.4")] * (MAX_FAILURES - 1)
        + [("locked", "198.51.100.4"), ("locked", "198.51.100.5"), ("refused", None)])
    ok = entries[0]
    assert (ok.actor, ok.actor_user_id, ok.object_type) == ("gv.lan", user.id, "api_tokens")
    assert entries[1].details == {"code": "bad_credentials", "failed_logins": 1}
    assert entries[MAX_FAILURES].details["code"] == "account_locked"
    stranger = entries[-1]
    assert (stranger.actor, stranger.actor_user_id) == ("anonymous", None)
    assert stranger.details == {"code": "bad_credentials", "username": "nguoi.la"}
    assert all(PASSWORD not in str(e.details) and WRONG not in str(e.details) for e in entries)


# --------------------------------------------------------------------------------------------
# What is committed: a database of its own, real commits
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def committed(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> Iterator[Engine]:
    url = new_database(request.param)
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def committed_user(engine: Engine) -> str:
    username = f"gv.{secrets.token_hex(4)}"
    with session_factory(engine)() as s:
        make_user(s, username)
        s.commit()
    return username


def attempt(engine: Engine, username: str, password: str, barrier: threading.Barrier | None = None) -> str:
    """One sign-in in its own transaction, committed whatever the outcome, as the API does."""
    with session_factory(engine)() as s:
        if barrier is not None:
            barrier.wait()
        try:
            sign_in(s, username, password, ip=IP)
        except AuthError as exc:
            assert exc.keep_changes
            s.commit()
            return exc.code
        s.commit()
        return "ok"


def test_refused_attempt_is_kept_when_the_caller_commits(committed: Engine) -> None:
    username = committed_user(committed)
    assert attempt(committed, username, WRONG) == "bad_credentials"
    with session_factory(committed)() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        assert user.failed_logins == 1
        entry = s.scalars(select(AuditEntry).where(AuditEntry.actor == username)).one()
        assert (entry.action, entry.outcome) == ("sign_in", "refused")


def test_concurrent_wrong_guesses_cannot_exceed_the_limit(committed: Engine) -> None:
    """Eight guesses at once: without the row lock they all read "0 failures" and each gets
    a full password check; with it, exactly five are checked and the rest meet the lock."""
    username = committed_user(committed)
    guesses = 8
    barrier = threading.Barrier(guesses)
    codes: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            codes.append(attempt(committed, username, WRONG, barrier))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(guesses)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(codes) == sorted(["bad_credentials"] * (MAX_FAILURES - 1)
                                   + ["account_locked"] * (guesses - MAX_FAILURES + 1))
    with session_factory(committed)() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        assert user.failed_logins == MAX_FAILURES and user.locked_until is not None
        outcomes = s.scalars(select(AuditEntry.outcome).where(AuditEntry.actor == username)).all()
        assert len(outcomes) == guesses
    assert attempt(committed, username, PASSWORD) == "account_locked"
