"""Users and sign-in: create, change, deactivate, authenticate, throttle."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import bcrypt
from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from qure.auth.models import User
from qure.core import audit, throttle
from qure.core.db import get_or_raise
from qure.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    TooManyAttempts,
    Unauthorized,
    Unavailable,
)
from qure.core.pagination import Page, paginate
from qure.core.roles import Role
from qure.core.text import like_escape
from qure.extensions import db, redis_store

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further
EDITABLE = ("full_name", "email", "role", "registration_number", "qualification")
# Bcrypt hashes of a fixed string, by cost: checked against when the username is unknown,
# so that the answer takes as long as for a real user (same BCRYPT_ROUNDS) and reveals nothing.
_DUMMY_HASHES: dict[int, str] = {}


# ---- passwords -----------------------------------------------------------------------


def hash_password(password: str) -> str:
    rounds = current_app.config.get("BCRYPT_ROUNDS", 12)
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _dummy_hash() -> str:
    rounds = current_app.config.get("BCRYPT_ROUNDS", 12)
    if rounds not in _DUMMY_HASHES:
        _DUMMY_HASHES[rounds] = bcrypt.hashpw(b"qure-no-such-user", bcrypt.gensalt(rounds)).decode()
    return _DUMMY_HASHES[rounds]


def password_matches(user: User | None, password: str) -> bool:
    hashed = user.password_hash if user else _dummy_hash()
    ok = bcrypt.checkpw(password.encode()[:MAX_PASSWORD_BYTES], hashed.encode())
    return ok and user is not None


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput(
            "password: at least 8 characters",
            fields={"password": f"Use at least {MIN_PASSWORD} characters."},
        )
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidInput(
            "password: too long",
            fields={"password": f"Use at most {MAX_PASSWORD_BYTES} bytes."},
        )
    return password


# ---- validation ----------------------------------------------------------------------


def _clean(data: dict[str, Any], creating: bool) -> dict[str, Any]:
    """Validate user fields; raise InvalidInput naming every bad field."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    if creating or "username" in data:
        username = str(data.get("username") or "").strip().lower()
        if not USERNAME_RE.match(username):
            errors["username"] = (
                "3 to 40 characters: letters, digits, dot, dash or underscore, starting "
                "with a letter or digit."
            )
        out["username"] = username
    if creating or "full_name" in data:
        name = " ".join(str(data.get("full_name") or "").split())
        if not 2 <= len(name) <= 120:
            errors["full_name"] = "Give the full name (2 to 120 characters)."
        out["full_name"] = name
    if creating or "email" in data:
        email = str(data.get("email") or "").strip().lower()
        if not EMAIL_RE.match(email) or len(email) > 254:
            errors["email"] = "Give a valid email address."
        out["email"] = email
    if creating or "role" in data:
        try:
            out["role"] = Role(str(data.get("role") or "").upper())
        except ValueError:
            errors["role"] = "Choose one of ADMIN, DOCTOR, PHARMACIST, RECEPTION."
    for key in ("registration_number", "qualification"):
        if key in data:
            value = " ".join(str(data.get(key) or "").split()) or None
            if value and len(value) > (60 if key == "registration_number" else 120):
                errors[key] = "Too long."
            out[key] = value
    if creating or "password" in data:
        try:
            out["password"] = _check_password(data.get("password"))
        except InvalidInput as exc:
            errors.update(exc.fields)
    for key in out:
        # PostgreSQL cannot store NUL in text: refuse it here rather than fail on insert.
        if key != "password" and "\x00" in str(data.get(key) or ""):
            errors.setdefault(key, "Remove the NUL character.")
    if errors:
        raise InvalidInput.naming(errors)
    return out


def snapshot(user: User) -> dict[str, Any]:
    """The audited view of a user (never the password hash)."""
    return {
        "username": user.username,
        "full_name": user.full_name,
        "email": user.email,
        "role": user.role.value,
        "registration_number": user.registration_number,
        "qualification": user.qualification,
        "is_active": user.is_active,
    }


def _unique_violation(exc: IntegrityError) -> InvalidInput | Conflict:
    text = str(exc.orig)
    if "uq_users_username_lower" in text:
        return Conflict(
            "That username is taken.",
            "username_taken",
            fields={"username": "Already taken."},
        )
    if "uq_users_email_lower" in text:
        return Conflict("That email is in use.", "email_taken", fields={"email": "Already in use."})
    raise exc


# ---- users ---------------------------------------------------------------------------


def get_user(user_id: int) -> User:
    """The user with this id; NotFound otherwise."""
    return get_or_raise(User, user_id, "No such user.", "user_not_found")


def list_users(
    q: str | None = None,
    role: Role | None = None,
    active: bool | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """Users filtered by a name/username fragment, role and active flag, by name."""
    query = select(User).order_by(User.full_name, User.id)
    q = (q or "").replace("\x00", "")  # PostgreSQL text cannot hold NUL
    if q:
        like = f"%{like_escape(q.strip().lower())}%"
        query = query.where(or_(func.lower(User.full_name).like(like), User.username.like(like)))
    if role:
        query = query.where(User.role == role)
    if active is not None:
        query = query.where(User.is_active.is_(active))
    return paginate(query, page, per_page)


def active_staff_by_role() -> dict[Role, int]:
    """How many active users hold each role."""
    query = select(User.role, func.count()).where(User.is_active.is_(True)).group_by(User.role)
    return dict(db.session.execute(query).all())


def create_user(actor: User | None, data: dict[str, Any]) -> User:
    """Create a staff account. Raises InvalidInput, or Conflict when the username or email
    is taken. A DOCTOR needs a registration number (it is printed on prescriptions)."""
    clean = _clean(data, creating=True)
    if clean["role"] == Role.DOCTOR and not clean.get("registration_number"):
        raise InvalidInput(
            "registration_number: required for a doctor",
            fields={"registration_number": "A doctor's registration number is required."},
        )
    password = clean.pop("password")
    user = User(**clean, password_hash=hash_password(password), is_active=True, token_version=1)
    try:
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError as exc:
        raise _unique_violation(exc) from None
    audit.record(actor, "USER_CREATED", ("user", user.id), None, snapshot(user))
    return user


def _lock_active_admins() -> list[int]:
    return db.session.scalars(
        select(User.id)
        .where(User.role == Role.ADMIN, User.is_active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()


def update_user(actor: User, user_id: int, data: dict[str, Any]) -> User:
    """Change a user's details, role, active flag or password (ADMIN).

    Raises NotFound, InvalidInput, Forbidden (an admin deactivating themself) and
    Conflict `last_admin` (the clinic would be left with no active admin). A password
    reset or deactivation ends the user's tokens and sessions.
    """
    allowed = set(EDITABLE) | {"is_active", "password"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(
            f"{unknown[0]}: cannot be changed here",
            fields={k: "Unknown field." for k in unknown},
        )
    clean = _clean({k: v for k, v in data.items() if k != "is_active"}, creating=False)
    active = data.get("is_active")  # a bool or None: the schema and form read it
    admins = _lock_active_admins()
    user = get_or_raise(User, user_id, "No such user.", "user_not_found", lock=True)
    if active is False and actor.id == user.id:
        raise Forbidden("You cannot deactivate your own account.", "cannot_deactivate_self")
    leaves_admin = (active is False) or ("role" in clean and clean["role"] != Role.ADMIN)
    if leaves_admin and user.id in admins and len(admins) == 1:
        raise Conflict("The clinic must keep at least one active admin.", "last_admin")
    role_after = clean.get("role", user.role)
    reg_after = clean.get("registration_number", user.registration_number)
    if role_after == Role.DOCTOR and not reg_after:
        raise InvalidInput(
            "registration_number: required for a doctor",
            fields={"registration_number": "A doctor's registration number is required."},
        )
    before = snapshot(user)
    password = clean.pop("password", None)
    try:
        # Changed inside the savepoint: begin_nested() flushes what is pending before it
        # starts, so a taken email set earlier would break the caller's whole transaction.
        with db.session.begin_nested():
            for key, value in clean.items():
                setattr(user, key, value)
            if active is not None:
                user.is_active = active
            if password is not None or active is False:
                user.token_version += 1
            if password is not None:
                user.password_hash = hash_password(password)
    except IntegrityError as exc:
        raise _unique_violation(exc) from None
    _audit_user_changes(actor, user, before, password is not None)
    return user


def _audit_user_changes(actor: User, user: User, before: dict, password_reset: bool) -> None:
    after = snapshot(user)
    old, new = audit.diff(before, after)
    target = ("user", user.id)
    if "role" in new:
        audit.record(
            actor,
            "USER_ROLE_CHANGED",
            target,
            {"role": old["role"]},
            {"role": new["role"]},
        )
    if "is_active" in new:
        action = "USER_DEACTIVATED" if not new["is_active"] else "USER_REACTIVATED"
        audit.record(
            actor,
            action,
            target,
            {"is_active": old["is_active"]},
            {"is_active": new["is_active"]},
        )
    rest = {k: v for k, v in new.items() if k not in {"role", "is_active"}}
    if rest:
        audit.record(actor, "USER_UPDATED", target, {k: old[k] for k in rest}, rest)
    if password_reset:
        audit.record(actor, "USER_PASSWORD_RESET", target)


# ---- sign-in -------------------------------------------------------------------------


def _failures_key(username: str) -> str:
    return f"qure:login_failures:{username}"


# Count one attempt against a username, atomically, unless it must wait: KEYS[1] holds the
# failures in a row (`count`) and when the last one started (`last`). ARGV: now, the free
# failures, the delay's cap, how long failures are remembered, 1 for a known device (never
# held back, but its failures still count). Returns the seconds to wait (0: go ahead).
_RESERVE_SCRIPT = """
local now, free, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if ARGV[5] ~= '1' and count >= free then
  local ready = last + math.min(cap, 2 ^ (count - free + 1))
  if now < ready then return math.max(1, math.ceil(ready - now)) end
end
redis.call('HSET', KEYS[1], 'count', count + 1, 'last', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 0
"""


def login_delay(failures: int) -> int:
    """The seconds a username must wait after `failures` failed sign-ins in a row: none for
    the first LOGIN_MAX_FAILURES, then 2, 4, 8 ... up to LOGIN_DELAY_MAX_SECONDS."""
    cfg = current_app.config
    free, cap = cfg["LOGIN_MAX_FAILURES"], cfg["LOGIN_DELAY_MAX_SECONDS"]
    return 0 if failures < free else min(cap, 2 ** (failures - free + 1))


def _reserve_attempt(username: str, known_device: bool) -> int:
    """Count this attempt against the username before its password is checked, in one
    atomic step, so that attempts sent at once cannot get round the delay.

    Returns the seconds the username must still wait (the attempt is then not counted), or
    0: the attempt stands as a failure unless it succeeds. A known device is never held
    back, so that a guesser elsewhere cannot keep the real user out of their usual browser.
    """
    cfg = current_app.config
    wait = redis_store.client.eval(
        _RESERVE_SCRIPT,
        1,
        _failures_key(username),
        f"{time.time():.6f}",
        cfg["LOGIN_MAX_FAILURES"],
        cfg["LOGIN_DELAY_MAX_SECONDS"],
        cfg["LOGIN_FAILURE_WINDOW_SECONDS"],
        "1" if known_device else "0",
    )
    return int(wait)


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


def _reserve_address(address: str | None) -> str | None:
    """Count this attempt against the caller's address (all usernames together); raise
    TooManyAttempts when the address has failed too often lately. Returns the entry."""
    if not address:
        return None  # no request (a command or a test): nothing to count against
    cfg = current_app.config
    entry, wait = throttle.reserve(
        "login_address",
        address,
        cfg["LOGIN_ADDRESS_MAX_FAILURES"],
        cfg["LOGIN_ADDRESS_WINDOW_SECONDS"],
    )
    if wait:
        raise TooManyAttempts(
            f"Too many failed sign-ins from this address. Try again in {_in_words(wait)}.",
            retry_after=wait,
        )
    return entry


class SignInUnavailable(Unavailable):
    code = "sign_in_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "Sign-in is unavailable for a moment (its attempt counters do not answer); "
            "try again shortly. Staff already signed in keep working."
        )


def authenticate(username: str, password: str, known_device: bool = False) -> User:
    """Check a username and password (see `_authenticate`). Raises SignInUnavailable (503)
    when Redis, which counts the attempts, does not answer: without the counters a guesser
    would be unlimited, so sign-in waits for them rather than going on unthrottled."""
    try:
        return _authenticate(username, password, known_device)
    except RedisError:
        raise SignInUnavailable() from None


def _authenticate(username: str, password: str, known_device: bool = False) -> User:
    """Check a username and password. Audits the outcome either way.

    Two limits, both counted in Redis before the password is checked:
    - per address (the request's, all usernames together): LOGIN_ADDRESS_MAX_FAILURES
      failures within LOGIN_ADDRESS_WINDOW_SECONDS, then every attempt is refused until the
      oldest of them leaves the window;
    - per username: after LOGIN_MAX_FAILURES failures in a row, each further attempt must
      wait a delay that doubles (2, 4, 8 ... up to LOGIN_DELAY_MAX_SECONDS) after the last
      one. Never a long lock, and none at all for a `known_device` (a browser the user
      signed in from before), so a guesser cannot keep the real user out.

    Raises TooManyAttempts (even for the right password) or Unauthorized
    `invalid_credentials` (wrong username, wrong password or deactivated account, without
    saying which). Returns the user.
    """
    # NUL cannot reach PostgreSQL; no username holds U+FFFD, so such a name matches nobody.
    name = (username or "").strip().lower()[:80].replace("\x00", "\ufffd")
    tried = {"id": None, "name": name, "role": None}
    address = audit.current_context().ip
    try:
        address_entry = _reserve_address(address)
    except TooManyAttempts:
        reason = {"reason": "address_limited"}
        audit.record(None, "USER_LOGIN_FAILED", ("user", None), None, reason, tried)
        raise
    remaining = _reserve_attempt(name, known_device)
    if remaining:
        if address_entry:  # not checked: not a failure of the address either
            throttle.release("login_address", address, address_entry)
        audit.record(None, "USER_LOGIN_FAILED", ("user", None), None, {"reason": "locked"}, tried)
        raise TooManyAttempts(
            f"Too many failed sign-ins for this username. Try again in {_in_words(remaining)}.",
            retry_after=remaining,
        )
    try:
        user = db.session.scalar(select(User).where(func.lower(User.username) == name))
        ok = password_matches(user, password or "") and user.is_active
    except Exception:
        # Not checked: not a failure.
        redis_store.client.hincrby(_failures_key(name), "count", -1)
        if address_entry:
            throttle.release("login_address", address, address_entry)
        raise
    if not ok:
        target = ("user", user.id if user else None)
        audit.record(None, "USER_LOGIN_FAILED", target, None, {"reason": "invalid"}, tried)
        raise Unauthorized("Wrong username or password.", "invalid_credentials")
    redis_store.client.delete(_failures_key(name))
    if address_entry:
        throttle.release("login_address", address, address_entry)
    audit.record(user, "USER_LOGIN", ("user", user.id))
    return user


def sign_out(user: User) -> None:
    """End the user's sessions and tokens everywhere (a copied session cookie stops
    working too: Flask's session lives in the cookie itself). Audited."""
    db.session.execute(
        update(User).where(User.id == user.id).values(token_version=User.token_version + 1)
    )
    audit.record(user, "USER_LOGOUT", ("user", user.id))


def user_for_session(session_id: str) -> User | None:
    """The active user a browser session names, if its token version is still current."""
    try:
        user_id, version = (int(part) for part in session_id.split(":"))
    except ValueError:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.is_active or user.token_version != version:
        return None
    return user


def user_for_token(user_id: str, version: int | None) -> User | None:
    """The active user a JWT names, if the token predates no reset or deactivation."""
    try:
        user = db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None
    if user is None or not user.is_active or user.token_version != version:
        return None
    return user
