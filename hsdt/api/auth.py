"""Sign-in rules of the REST API: passwords, bearer tokens, lock-out — without FastAPI.

Plain functions on a SQLAlchemy :class:`~sqlalchemy.orm.Session`, so that the rules can be
tested on both databases and reused by any front end. The routes only translate
:class:`AuthError` into a response (``status`` and ``code`` are on the error).

Transactions
    These functions never commit: they add to the caller's session and flush. A *refused*
    sign-in still changes the database — the failure counter, perhaps the lock, and the
    audit entry that Điều 11 asks for — so :func:`sign_in` flushes those and then raises an
    :class:`AuthError` whose ``keep_changes`` is true. **The caller must commit the session
    before reporting such an error**, not roll it back; otherwise every guess would be
    forgotten and the lock-out would never trigger::

        try:
            issued = sign_in(session, username, password, ip=client_ip)
        except AuthError as exc:
            if exc.keep_changes:
                session.commit()
            raise
        session.commit()

    An API-wide session dependency can do the same generically by committing, instead of
    rolling back, whenever the exception has ``keep_changes`` set.

HTTP statuses (on :attr:`AuthError.status`)
    - 401 ``bad_credentials``, ``token_invalid``, ``token_expired``: the client should ask
      for a password again.
    - 423 ``account_locked`` (RFC 4918 "Locked"): the *account* is locked, whoever asks and
      whatever the password; asking again is pointless until ``unlocks_at``. Not 429, which
      says the *client* sends too much, and not 401, which would invite re-typing the password.
    - 403 ``account_disabled``: the password was right but the account may not be used; only
      an administrator can change that. It is reported only after the right password, so it
      tells a stranger nothing about which accounts exist.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hsdt.db.audit import record
from hsdt.db.people import ApiToken, User
from hsdt.db.types import utcnow
from hsdt.domain.errors import HsdtError

TOKEN_TTL = timedelta(minutes=30)
"""Short-lived on purpose: a token left in a shared staff-room browser dies within the period."""
MAX_FAILURES = 5
"""Consecutive wrong passwords after which the account is locked."""
LOCKOUT = timedelta(minutes=15)
"""How long a lock lasts; long enough to stop guessing, short enough not to need a helpdesk."""
MIN_PASSWORD_LENGTH = 10

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ANONYMOUS = "anonymous"
"""Audit actor for an attempt on an unknown username. The typed name goes into ``details``,
never into ``actor``, so that typing ``system:seal_worker`` cannot pass for the service."""

_hasher = PasswordHasher()


# --------------------------------------------------------------------------------------------
# Errors and results
# --------------------------------------------------------------------------------------------
class AuthError(HsdtError):
    """Sign-in or token refused. ``status`` is the HTTP status (see the module docstring).

    ``keep_changes`` is true when the session holds bookkeeping of the refusal (counter, lock,
    audit entry) that must be committed; ``unlocks_at`` is set for ``account_locked`` so that
    the API can send ``Retry-After``.
    """

    code = "auth_error"

    def __init__(self, message: str, *, code: str, status: int, keep_changes: bool = False,
                 unlocks_at: datetime | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.keep_changes = keep_changes
        self.unlocks_at = unlocks_at


class PasswordRejected(HsdtError):
    """A new password does not meet the rules (HTTP 422); nothing was changed."""

    code = "password_too_short"
    status = 422


@dataclass(frozen=True)
class IssuedToken:
    """What a successful sign-in hands to the client. Only here does the raw token exist:
    the database keeps its SHA-256, so the token is kept out of ``repr`` (and logs) as well."""

    token: str = field(repr=False)
    expires_at: datetime
    user_id: int


BAD_CREDENTIALS = ("Tên đăng nhập hoặc mật khẩu không đúng. Hãy kiểm tra lại (chú ý phím Caps Lock "
                   "và bộ gõ tiếng Việt đang bật hay tắt) rồi thử lại.")
ACCOUNT_DISABLED = ("Tài khoản này đã bị ngừng sử dụng. Hãy liên hệ quản trị hệ thống của trường "
                    "(hoặc của Phòng/Sở) nếu cần mở lại.")
TOKEN_INVALID = "Phiên đăng nhập không hợp lệ. Hãy đăng nhập lại."
TOKEN_REVOKED = "Phiên đăng nhập này đã kết thúc (đã đăng xuất hoặc đổi mật khẩu). Hãy đăng nhập lại."
TOKEN_EXPIRED = (f"Phiên đăng nhập đã hết hạn (mỗi phiên dùng được {TOKEN_TTL.seconds // 60} phút). "
                 "Hãy đăng nhập lại.")
TOKEN_USER_DISABLED = ("Tài khoản của phiên đăng nhập này đã bị ngừng sử dụng. Hãy liên hệ quản trị "
                       "hệ thống của trường nếu cần mở lại.")


def vn_time(moment: datetime) -> str:
    """``10:15 ngày 29/11/2026 (GMT+7)``, rounded *up* to the minute.

    Rounding up matters for a lock: saying "đến 10:14" for 10:14:30 would send the teacher
    back half a minute too early, to be refused again.
    """
    local = moment.astimezone(VN_TZ)
    if local.second or local.microsecond:
        local = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return f"{local:%H:%M} ngày {local:%d/%m/%Y} (GMT+7)"


def _locked_error(unlocks_at: datetime) -> AuthError:
    return AuthError(
        f"Tài khoản tạm khoá đến {vn_time(unlocks_at)} do nhập sai mật khẩu quá nhiều lần. "
        "Hãy thử lại sau thời điểm đó, hoặc nhờ quản trị hệ thống của trường đặt lại mật khẩu.",
        code="account_locked", status=423, keep_changes=True, unlocks_at=unlocks_at)


def _now(now: datetime | None) -> datetime:
    """The moment to judge by; tests pass one. Naive times are refused (DESIGN §3)."""
    if now is None:
        return utcnow()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"thời điểm không có múi giờ (naive datetime): {now!r}; hãy dùng UTC")
    return now.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Passwords
# --------------------------------------------------------------------------------------------
def _normalise(password: str) -> str:
    """NFC, because Vietnamese keyboards disagree: Unikey in "Unicode tổ hợp" mode types
    ``ệ`` as e + two combining marks, a phone types one code point. Without this a teacher's
    password would work on one machine and not on the next."""
    return unicodedata.normalize("NFC", password)


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string, ``$argon2id$…``) with argon2-cffi's default parameters."""
    return _hasher.hash(_normalise(password))


def verify_password(password_hash: str, password: str) -> bool:
    """True if ``password`` matches; False for a wrong password *or* an unreadable hash, so a
    damaged row refuses sign-in instead of crashing it."""
    try:
        return _hasher.verify(password_hash, _normalise(password))
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash nobody knows the password of, verified for unknown users so that "no such
    user" costs the same argon2 time as "wrong password" and cannot be told apart by timing."""
    return hash_password(secrets.token_urlsafe(32))


def set_password(session: Session, user: User, password: str, *, now: datetime | None = None) -> None:
    """Give ``user`` a new password (at least :data:`MIN_PASSWORD_LENGTH` characters).

    Also lifts a lock and clears the failure count (an administrator resetting a locked
    teacher's password means to let them in), and revokes every live token of the user: a
    password change is how someone who suspects a stolen session throws it out. Auditing the
    change is the caller's, who knows who made it and why.
    """
    length = len(_normalise(password))
    if length < MIN_PASSWORD_LENGTH:
        raise PasswordRejected(
            f"Mật khẩu phải có ít nhất {MIN_PASSWORD_LENGTH} ký tự (mật khẩu vừa nhập có {length}). "
            "Hãy chọn mật khẩu dài hơn — một câu ngắn dễ nhớ là lựa chọn tốt.")
    moment = _now(now)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    if user.id is not None:
        live = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id,
                                                      ApiToken.revoked_at.is_(None)))
        for token in live:
            token.revoked_at = moment
    session.flush()


# --------------------------------------------------------------------------------------------
# Sign-in, tokens, sign-out
# --------------------------------------------------------------------------------------------
def token_digest(token: str) -> str:
    """The SHA-256 (lower-case hex) under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _refuse(session: Session, actor: User | str, *, ip: str | None, outcome: str,
            error: AuthError, details: dict[str, object]) -> AuthError:
    """Log the refusal and flush, so the counter and the entry are in the caller's commit."""
    record(session, actor=actor, action="sign_in", outcome=outcome, ip=ip,
           details={"code": error.code, **details})
    session.flush()
    return error


def sign_in(session: Session, username: str, password: str, *, ip: str | None,
            now: datetime | None = None) -> IssuedToken:
    """Check a username and password; on success issue a token valid for :data:`TOKEN_TTL`.

    Raises :class:`AuthError` (``keep_changes`` true — **commit before reporting it**, see
    the module docstring): ``bad_credentials`` (unknown user and wrong password alike, at
    comparable cost), ``account_locked`` (the :data:`MAX_FAILURES`-th consecutive wrong
    password, and every attempt during the :data:`LOCKOUT` that follows, right password
    included), ``account_disabled`` (right password, inactive account). Every attempt adds
    an audit entry (``sign_in``; ``ok``/``refused``/``locked``).

    The user row is read ``FOR UPDATE`` (PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises
    writers anyway) and the password checked while the row is held, so concurrent guesses
    are counted one after the other and cannot together exceed the limit.
    """
    moment = _now(now)
    user = session.scalars(
        select(User).where(User.username == username).with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()

    if user is None:
        verify_password(_dummy_hash(), password)
        raise _refuse(session, ANONYMOUS, ip=ip, outcome="refused",
                      error=AuthError(BAD_CREDENTIALS, code="bad_credentials", status=401,
                                      keep_changes=True),
                      details={"username": username[:120]})

    if user.locked_until is not None:
        if moment < user.locked_until:
            # The message already says the account exists, so there is nothing for a
            # dummy verification to hide; the password is not even looked at.
            raise _refuse(session, user, ip=ip, outcome="locked", error=_locked_error(user.locked_until),
                          details={"locked_until": user.locked_until.isoformat()})
        user.locked_until = None  # the lock has run out: a fresh set of attempts
        user.failed_logins = 0

    if user.password_hash is None or not verify_password(user.password_hash, password):
        if user.password_hash is None:
            verify_password(_dummy_hash(), password)  # same cost as a real mismatch
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until = moment + LOCKOUT
            raise _refuse(session, user, ip=ip, outcome="locked", error=_locked_error(user.locked_until),
                          details={"failed_logins": user.failed_logins,
                                   "locked_until": user.locked_until.isoformat()})
        raise _refuse(session, user, ip=ip, outcome="refused",
                      error=AuthError(BAD_CREDENTIALS, code="bad_credentials", status=401,
                                      keep_changes=True),
                      details={"failed_logins": user.failed_logins})

    # Right password from here on: a good guess is not a failure, even for a disabled account.
    user.failed_logins = 0
    if not user.is_active:
        raise _refuse(session, user, ip=ip, outcome="refused",
                      error=AuthError(ACCOUNT_DISABLED, code="account_disabled", status=403,
                                      keep_changes=True),
                      details={})

    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)  # parameters raised since it was set

    raw = secrets.token_urlsafe(32)
    token = ApiToken(token_sha256=token_digest(raw), user_id=user.id, issued_at=moment,
                     expires_at=moment + TOKEN_TTL, ip=ip)
    session.add(token)
    session.flush()
    record(session, actor=user, action="sign_in", outcome="ok", obj=token, ip=ip,
           details={"expires_at": token.expires_at.isoformat()})
    session.flush()
    return IssuedToken(token=raw, expires_at=token.expires_at, user_id=user.id)


def _find_token(session: Session, token: str) -> ApiToken | None:
    return session.scalars(
        select(ApiToken).where(ApiToken.token_sha256 == token_digest(token))).one_or_none()


def authenticate(session: Session, token: str, *, now: datetime | None = None) -> User:
    """The user a bearer token belongs to, if the token may still be used.

    Raises :class:`AuthError` (401, nothing written): ``token_invalid`` for an unknown or
    revoked token or a user since made inactive, ``token_expired`` past ``expires_at``. The
    expiry is fixed at issue — using a token does not extend it — so a stolen token is good
    for at most :data:`TOKEN_TTL`.
    """
    moment = _now(now)
    row = _find_token(session, token)
    if row is None:
        raise AuthError(TOKEN_INVALID, code="token_invalid", status=401)
    if row.revoked_at is not None:
        raise AuthError(TOKEN_REVOKED, code="token_invalid", status=401)
    if moment >= row.expires_at:
        raise AuthError(TOKEN_EXPIRED, code="token_expired", status=401)
    if not row.user.is_active:
        raise AuthError(TOKEN_USER_DISABLED, code="token_invalid", status=401)
    return row.user


def sign_out(session: Session, token: str, *, ip: str | None = None, now: datetime | None = None) -> None:
    """Revoke ``token`` (kept, not deleted, so the audit log's sessions stay explained).

    Signing out twice is harmless: the second call changes nothing. An unknown token raises
    ``token_invalid`` (401), as any request with it would. The caller commits.
    """
    moment = _now(now)
    row = _find_token(session, token)
    if row is None:
        raise AuthError(TOKEN_INVALID, code="token_invalid", status=401)
    if row.revoked_at is None:
        row.revoked_at = moment
        record(session, actor=row.user, action="sign_out", outcome="ok", obj=row, ip=ip)
        session.flush()
