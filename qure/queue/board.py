"""The waiting-room board: its JSON body, built from Redis once per queue
version and cached there, and the display key that opens it on an unattended screen
(only the key's SHA-256 is kept, in `clinic_settings`)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import current_app
from redis.exceptions import RedisError

from qure.admin.models import ClinicSetting
from qure.auth.models import User
from qure.core import audit, clock, throttle
from qure.core.db import after_commit
from qure.core.errors import InvalidInput, TooManyAttempts
from qure.extensions import db, redis_store
from qure.queue import store
from qure.queue.loading import reload
from qure.queue.service import doctors_of_day

DISPLAY_KEY = "display_key_sha256"


MIN_KEY_LENGTH = 12


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def set_display_key(actor: User | None, key: Any = None) -> str:
    """Set the key that opens the waiting-room board (a new random one when none is
    given) and return it: only its SHA-256 is kept, so it is shown once. Screens opened
    with the old key stop updating. Raises InvalidInput for a key under 12 characters."""
    if key in (None, ""):
        key = secrets.token_urlsafe(18)
    key = str(key).strip()
    if len(key) < MIN_KEY_LENGTH or len(key) > 200 or "\x00" in key:
        raise InvalidInput(
            "display_key: too short",
            fields={"display_key": f"Use {MIN_KEY_LENGTH} to 200 characters."},
        )
    row = db.session.get(ClinicSetting, DISPLAY_KEY, with_for_update=True)
    if row is None:
        row = ClinicSetting(key=DISPLAY_KEY, value=_digest(key))
        db.session.add(row)
    row.value = _digest(key)
    row.updated_by_id = actor.id if actor else None
    db.session.flush()
    # The key itself never goes into the audit trail.
    audit.record(actor, "DISPLAY_KEY_CHANGED", ("setting", DISPLAY_KEY), None, None)
    after_commit(_forget_cached_digest)
    return key


def _forget_cached_digest() -> None:
    """The board's polls cache the digest in Redis; a new key must lock old screens out
    at once."""
    with contextlib.suppress(RedisError):
        redis_store.client.delete(store.DISPLAY_DIGEST_KEY)


def display_key_digest() -> str | None:
    """The SHA-256 of the current display key (the settings page's, else DISPLAY_KEY from
    the environment); None when there is none, and the board then opens for staff only."""
    row = db.session.get(ClinicSetting, DISPLAY_KEY)
    if row is not None:
        return row.value
    configured = current_app.config.get("DISPLAY_KEY")
    return _digest(configured) if configured else None


def display_key_matches(key: str | None, expected: str | None = None) -> str | None:
    """The key's digest when it is the current display key (or matches the digest
    `expected`), else None (compared in constant time)."""
    expected = expected or display_key_digest()
    if not key or not expected:
        return None
    given = _digest(key.strip())
    return given if hmac.compare_digest(given, expected) else None


def try_display_key(key: str | None, expected: str | None = None) -> str | None:
    """`display_key_matches`, throttled per address (the request's): each wrong key counts,
    and after DISPLAY_KEY_MAX_FAILURES of them within DISPLAY_KEY_WINDOW_SECONDS every key
    is refused, the right one too (else a guess would be told apart by its answer), until
    the oldest failure leaves the window. A key of 12 characters stays out of reach: at 20
    guesses a minute per address, even one of 12 lowercase letters takes millions of years.

    Raises TooManyAttempts; returns the digest (right key) or None (no key, wrong key).
    """
    if not key:
        return None
    cfg = current_app.config
    limit, window = cfg["DISPLAY_KEY_MAX_FAILURES"], cfg["DISPLAY_KEY_WINDOW_SECONDS"]
    address = audit.current_context().ip or "-"
    digest = display_key_matches(key, expected)
    if digest:
        wait = throttle.waiting("display_key", address, limit, window)
    else:
        _entry, wait = throttle.reserve("display_key", address, limit, window)
    if wait:
        raise TooManyAttempts(
            f"Too many wrong display keys from this address. Try again in {wait} seconds.",
            retry_after=wait,
        )
    return digest


def display_key_set_at():
    row = db.session.get(ClinicSetting, DISPLAY_KEY)
    return row.updated_at if row else None


BOARD_BUILD_WAIT_SECONDS = 0.05


@dataclass(frozen=True)
class BoardState:
    day: date
    version: str
    cached: str | None
    display_digest: str | None  # the display key's SHA-256; None when no key is set


def board_state(day: date | None = None) -> BoardState:
    """The board's version, its cached body and the display key's digest, from one Redis
    round trip when nothing has changed (a poll that finds nothing new touches neither
    PostgreSQL nor the JSON encoder). A day Redis lost is loaded again first."""
    day = day or clock.today()
    found = store.probe(day)
    if not found.built:
        reload(day)
        found = store.probe(day)
    digest = found.display_digest
    if digest is None:
        digest = display_key_digest() or "-"
        store.remember_display_digest(digest)
    return BoardState(day, found.version, found.board, None if digest == "-" else digest)


def board_body(state: BoardState) -> str:
    """The waiting-room board as JSON text: per doctor on duty, now serving and the next
    three, as token numbers and initials only. Built from Redis once per version and
    cached there."""
    if state.cached is not None:
        return state.cached
    if not store.claim_board_build(state.day, state.version):
        # Another screen's poll is building this version (every screen asks just after a
        # change): wait for its text rather than all build it at once.
        deadline = time.monotonic() + BOARD_BUILD_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.004)
            built = store.cached_board(state.day, state.version)
            if built is not None:
                return built
    doctors = doctors_of_day(state.day)
    snapshot_ = store.board_snapshot(state.day, [d.id for d in doctors])
    body = json.dumps(
        {
            "date": state.day.isoformat(),
            "version": state.version,
            "doctors": [
                {"doctor": {"id": d.id, "name": d.full_name}, **snapshot_[d.id]} for d in doctors
            ],
        },
        separators=(",", ":"),
    )
    store.cache_board(state.day, state.version, body)
    return body
