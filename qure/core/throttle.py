"""Failure counters in Redis: how many times one address (or one name) failed lately.

A sliding window per key (a sorted set of attempt times). An attempt is counted *before*
it is checked, in one atomic step, so that attempts sent at once cannot get round the limit;
the caller takes the entry back when the attempt succeeds or was never checked.
"""

from __future__ import annotations

import math
import secrets
import time

from qure.extensions import redis_store

PREFIX = "qure:throttle:"


def _key(kind: str, subject: str) -> str:
    return f"{PREFIX}{kind}:{subject}"


def reserve(kind: str, subject: str, limit: int, window: int) -> tuple[str, int]:
    """Count one attempt by `subject` (e.g. an address) against `limit` per `window` seconds.

    Returns the attempt's entry and the seconds to wait: 0 when the attempt may go ahead
    (its entry then stands as a failure unless `release`d); otherwise the entry has been
    taken back already and the subject must wait that long.
    """
    now = time.time()
    key = _key(kind, subject)
    entry = f"{now:.6f}:{secrets.token_hex(4)}"
    pipe = redis_store.client.pipeline()  # MULTI/EXEC: no other attempt in between
    pipe.zremrangebyscore(key, 0, now - window)
    pipe.zadd(key, {entry: now})
    pipe.expire(key, window)
    pipe.zrevrange(key, 0, -1, withscores=True)
    others = [(m, score) for m, score in pipe.execute()[3] if m not in (entry, entry.encode())]
    if len(others) < limit:
        return entry, 0
    redis_store.client.zrem(key, entry)
    return entry, _wait(others, limit, window, now)


def _wait(others: list, limit: int, window: int, now: float) -> int:
    # The attempt may go ahead once the oldest of the last `limit` failures leaves the window.
    oldest_of_last = others[limit - 1][1]
    return max(1, math.ceil(oldest_of_last + window - now))


def release(kind: str, subject: str, entry: str) -> None:
    """Take a reserved attempt back (it succeeded, or it was never checked)."""
    redis_store.client.zrem(_key(kind, subject), entry)


def waiting(kind: str, subject: str, limit: int, window: int) -> int:
    """The seconds `subject` must still wait (0 when it is under the limit), counting nothing:
    for an attempt that succeeded, which must be refused all the same while the subject is
    held (or a guess would be told apart by its answer)."""
    now = time.time()
    found = redis_store.client.zrevrangebyscore(
        _key(kind, subject), "+inf", now - window, withscores=True
    )
    return 0 if len(found) < limit else _wait(found, limit, window, now)
