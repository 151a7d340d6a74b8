"""The live queue in Redis, from PostgreSQL: what Redis keeps of a token (`card`), and
loading a day again when Redis has lost it (restart without persistence, FLUSHALL).
PostgreSQL is the truth; these functions make Redis show it."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from qure.core import clock
from qure.extensions import db
from qure.queue import store
from qure.queue.models import QueueEntry, TokenStatus


def display(token_number: int) -> str:
    """A token as shown to people: three digits (`007`)."""
    return f"{token_number:03d}"


def initials(full_name: str) -> str:
    """`Asha Devi Sharma` -> `A.S.` (first and last word): all the board shows of a name."""
    words = [w for w in full_name.split() if w[:1].isalpha()] or full_name.split()
    if not words:
        return ""
    picked = [words[0], words[-1]] if len(words) > 1 else words
    return "".join(w[0].upper() + "." for w in picked)


def card(entry: QueueEntry) -> store.TokenCard:
    """What Redis keeps of a token (its entry loaded with its patient): number, place,
    display form and initials, kind."""
    return store.TokenCard(
        token_number=entry.token_number,
        doctor_id=entry.doctor_id,
        score=store.score(entry.tier, int(entry.sort_at.timestamp() * 1000)),
        display=display(entry.token_number),
        initials=initials(entry.patient.full_name),
        kind=entry.kind,
        urgent=entry.urgent,
    )


def reload(day: date) -> int:
    """Load a day's queue into Redis from `queue_entries`: the same order, the same current
    tokens, and a counter that continues the day's sequence. Returns the tokens loaded."""
    entries = list(
        db.session.scalars(
            select(QueueEntry)
            .where(
                QueueEntry.day == day,
                QueueEntry.status.in_((TokenStatus.WAITING, TokenStatus.WITH_DOCTOR)),
            )
            .options(joinedload(QueueEntry.patient))
        )
    )
    counter = (
        db.session.scalar(select(func.max(QueueEntry.token_number)).where(QueueEntry.day == day))
        or 0
    )
    waiting = [card(e) for e in entries if e.status == TokenStatus.WAITING]
    current = [card(e) for e in entries if e.status == TokenStatus.WITH_DOCTOR]
    store.install(day, counter, waiting, current)
    return len(entries)


def ensure_loaded(day: date) -> None:
    """Reload the day when Redis has lost it (restart without persistence, FLUSHALL)."""
    if not store.is_built(day):
        reload(day)


def live_version(day: date | None = None) -> str:
    """The day's queue version, which every token change moves on: one Redis round trip
    (a day Redis lost is loaded again first). Pages that poll for changes tag with it."""
    day = day or clock.today()
    built, version = store.version(day)
    if not built:
        reload(day)
        built, version = store.version(day)
    return version
