"""The live queue in Redis.

Per clinic day (`q:{day}:...`, every key expiring after two days):
- `counter`: the day's token numbers, one sequence for the clinic (INCR);
- `wait:{doctor}`: a sorted set of waiting token numbers, scored by place in the queue;
- `tok:{n}`: a hash per token (doctor, status, display number, initials, kind, urgent);
- `cur:{doctor}`: the token the doctor is seeing;
- `built`: set once the day's keys were loaded from PostgreSQL; `ver`: bumped on every
  change (the board's cheap "anything new?" check); `board:{ver}`: the board, cached;
  `today:{doctors}`: the day's queue as the API answers it, cached for one version.

PostgreSQL (`queue_entries`) is the truth. Every Redis answer that leads to a write is
checked against the locked row, and a missing `built` marker (Redis restarted empty,
FLUSHALL) makes the next queue request load the day again from PostgreSQL, keeping the
order and the token sequence.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import date

from redis.exceptions import RedisError

from qure.core import clock
from qure.core.errors import DomainError
from qure.extensions import redis_store
from qure.queue.models import TokenStatus

log = logging.getLogger(__name__)

TTL_SECONDS = 2 * 24 * 3600
TIER_WIDTH = 10**13  # above any epoch in milliseconds; still exact in a double


class QueueUnavailable(DomainError):
    status = 503
    code = "queue_unavailable"


def prefix(day: date) -> str:
    return f"q:{day.isoformat()}:"


def score(tier: int, sort_at_ms: int) -> int:
    """The sorted-set score of a token: its tier first, then its time within the tier."""
    return tier * TIER_WIDTH + sort_at_ms


def member(token_number: int) -> str:
    # Zero-padded so that equal scores fall back to token order.
    return f"{token_number:06d}"


# Give out the next token number, only while the day is loaded (else -1: load it first).
# (bandit takes a name with "TOKEN" for a password: this is a Lua script.)
_NEXT_TOKEN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return n
"""  # nosec B105

# Never let the counter fall behind a number PostgreSQL already holds. ARGV: ttl, number.
_RAISE_COUNTER = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
end
return 1
"""

# Put a token in (or back in) its doctor's waiting set and record its hash.
# ARGV: ttl, member, score, then field/value pairs of the hash.
_ENQUEUE = """
local p = KEYS[1]
local doctor = ARGV[4]
local wait = p .. 'wait:' .. doctor
local tok = p .. 'tok:' .. ARGV[2]
redis.call('ZADD', wait, ARGV[3], ARGV[2])
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', tok, 'doctor', doctor, unpack(fields))
redis.call('HSET', tok, 'status', 'WAITING')
if redis.call('GET', p .. 'cur:' .. doctor) == ARGV[2] then
  redis.call('DEL', p .. 'cur:' .. doctor)
end
redis.call('EXPIRE', wait, ARGV[1])
redis.call('EXPIRE', tok, ARGV[1])
redis.call('INCR', p .. 'ver')
redis.call('EXPIRE', p .. 'ver', ARGV[1])
return 1
"""

# A token leaves the waiting set with a new status (skipped, no-show, completed, or called
# by a specific number); WITH_DOCTOR makes it the doctor's current token.
# ARGV: ttl, member, status, doctor.
_SET_STATUS = """
local p = KEYS[1]
local doctor = ARGV[4]
local cur = p .. 'cur:' .. doctor
redis.call('ZREM', p .. 'wait:' .. doctor, ARGV[2])
redis.call('HSET', p .. 'tok:' .. ARGV[2], 'status', ARGV[3], 'doctor', doctor)
redis.call('EXPIRE', p .. 'tok:' .. ARGV[2], ARGV[1])
if ARGV[3] == 'WITH_DOCTOR' then
  redis.call('SET', cur, ARGV[2], 'EX', ARGV[1])
elseif redis.call('GET', cur) == ARGV[2] then
  redis.call('DEL', cur)
end
redis.call('INCR', p .. 'ver')
redis.call('EXPIRE', p .. 'ver', ARGV[1])
return 1
"""

# Call the first waiting token of a doctor (or the one named), atomically:
# {'unbuilt'} | {'busy', current} | {'empty'} | {'missing'} | {'called', member, score, prev}
# ARGV: ttl, doctor, member ('' for the first).
_CALL = """
local p = KEYS[1]
if redis.call('EXISTS', p .. 'built') == 0 then return {'unbuilt'} end
local doctor = ARGV[2]
local cur = p .. 'cur:' .. doctor
local wait = p .. 'wait:' .. doctor
local current = redis.call('GET', cur)
if current and redis.call('HGET', p .. 'tok:' .. current, 'status') == 'WITH_DOCTOR' then
  return {'busy', current}
end
local chosen, s
if ARGV[3] == '' then
  local popped = redis.call('ZPOPMIN', wait)
  if #popped == 0 then return {'empty'} end
  chosen, s = popped[1], popped[2]
else
  s = redis.call('ZSCORE', wait, ARGV[3])
  if not s then return {'missing'} end
  chosen = ARGV[3]
  redis.call('ZREM', wait, chosen)
end
redis.call('SET', cur, chosen, 'EX', ARGV[1])
redis.call('HSET', p .. 'tok:' .. chosen, 'status', 'WITH_DOCTOR')
redis.call('INCR', p .. 'ver')
return {'called', chosen, s, current or ''}
"""

# Undo a call whose database write did not happen: the token goes back where it was.
# ARGV: ttl, doctor, member, score, previous current ('' for none), restore (1/0).
_UNCALL = """
local p = KEYS[1]
local doctor = ARGV[2]
local cur = p .. 'cur:' .. doctor
if ARGV[6] == '1' then
  redis.call('ZADD', p .. 'wait:' .. doctor, ARGV[4], ARGV[3])
  redis.call('HSET', p .. 'tok:' .. ARGV[3], 'status', 'WAITING')
end
if redis.call('GET', cur) == ARGV[3] then
  if ARGV[5] == '' then
    redis.call('DEL', cur)
  else
    redis.call('SET', cur, ARGV[5], 'EX', ARGV[1])
  end
end
redis.call('INCR', p .. 'ver')
return 1
"""

# Load a day from PostgreSQL, merging with anything written since the keys were lost
# (newer writes win). ARGV: ttl, JSON {counter, waiting: [[doctor, member, score, {...}]],
# current: [[doctor, member, {...}]], version}.
_INSTALL = """
local p = KEYS[1]
local data = cjson.decode(ARGV[2])
local ttl = ARGV[1]
local counter = tonumber(redis.call('GET', p .. 'counter') or '0')
if data.counter > counter then
  redis.call('SET', p .. 'counter', data.counter, 'EX', ttl)
else
  redis.call('EXPIRE', p .. 'counter', ttl)
end
for _, item in ipairs(data.waiting) do
  local wait = p .. 'wait:' .. item[1]
  local tok = p .. 'tok:' .. item[2]
  local seen = redis.call('HGET', tok, 'status')
  -- A token called or moved since the rows were read stays out of the waiting set.
  if not seen or seen == 'WAITING' then
    redis.call('ZADD', wait, 'NX', item[3], item[2])
    redis.call('EXPIRE', wait, ttl)
  end
  if redis.call('EXISTS', tok) == 0 then
    for k, v in pairs(item[4]) do redis.call('HSET', tok, k, v) end
    redis.call('EXPIRE', tok, ttl)
  end
end
for _, item in ipairs(data.current) do
  local tok = p .. 'tok:' .. item[2]
  redis.call('SET', p .. 'cur:' .. item[1], item[2], 'EX', ttl, 'NX')
  if redis.call('EXISTS', tok) == 0 then
    for k, v in pairs(item[3]) do redis.call('HSET', tok, k, v) end
    redis.call('EXPIRE', tok, ttl)
  end
end
if redis.call('EXISTS', p .. 'ver') == 0 then
  redis.call('SET', p .. 'ver', data.version, 'EX', ttl)
else
  redis.call('INCR', p .. 'ver')
end
redis.call('SET', p .. 'built', '1', 'EX', ttl)
return 1
"""


def _client():
    return redis_store.client


def _script(source: str):
    cache = redis_store.__dict__.setdefault("_qure_scripts", {})
    client = _client()
    key = (id(client), source)
    if key not in cache:
        cache[key] = client.register_script(source)
    return cache[key]


def _run(source: str, keys: list[str], args: list) -> object:
    try:
        return _script(source)(keys=keys, args=args)
    except RedisError as exc:
        log.warning("queue store unavailable: %s", type(exc).__name__)
        raise QueueUnavailable(
            "The live queue is unavailable for a moment; try again.", "queue_unavailable"
        ) from None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def is_built(day: date) -> bool:
    try:
        return bool(_client().exists(prefix(day) + "built"))
    except RedisError:
        raise QueueUnavailable("The live queue is unavailable for a moment; try again.") from None


def next_token(day: date) -> int | None:
    """The next token number of the day, or None when the day must be loaded first."""
    number = int(_run(_NEXT_TOKEN, [prefix(day) + "built", prefix(day) + "counter"], [TTL_SECONDS]))
    return None if number < 0 else number


def raise_counter(day: date, at_least: int) -> None:
    """Make sure the next number given out is above `at_least` (after a reload race)."""
    _run(_RAISE_COUNTER, [prefix(day) + "counter"], [TTL_SECONDS, at_least])


@dataclass(frozen=True)
class TokenCard:
    """What Redis holds about a token: enough for the board, nothing more."""

    token_number: int
    doctor_id: int
    score: int
    display: str
    initials: str
    kind: str
    urgent: bool

    def fields(self) -> list[str]:
        return [
            "n",
            str(self.token_number),
            "display",
            self.display,
            "initials",
            self.initials,
            "kind",
            self.kind,
            "urgent",
            "1" if self.urgent else "0",
        ]


def enqueue(day: date, card: TokenCard) -> None:
    """Put a token in its doctor's waiting set (new, recalled, re-prioritised)."""
    _run(
        _ENQUEUE,
        [prefix(day)],
        [
            TTL_SECONDS,
            member(card.token_number),
            card.score,
            str(card.doctor_id),
            *card.fields(),
        ],
    )


def set_status(day: date, doctor_id: int, token_number: int, status: str) -> None:
    """Record a token's new status; it leaves the waiting set."""
    _run(
        _SET_STATUS,
        [prefix(day)],
        [TTL_SECONDS, member(token_number), status, str(doctor_id)],
    )


@dataclass(frozen=True)
class CallResult:
    outcome: str  # called | busy | empty | missing | unbuilt
    token_number: int | None = None
    score: str | None = None
    previous: str = ""


def call(day: date, doctor_id: int, token_number: int | None = None) -> CallResult:
    """Atomically take the first waiting token of a doctor (or the one named) and make it
    the doctor's current token, unless the current one is still WITH_DOCTOR."""
    result = _run(
        _CALL,
        [prefix(day)],
        [TTL_SECONDS, str(doctor_id), member(token_number) if token_number else ""],
    )
    outcome = _text(result[0])
    if outcome == "called":
        return CallResult(outcome, int(_text(result[1])), _text(result[2]), _text(result[3]))
    if outcome == "busy":
        return CallResult(outcome, int(_text(result[1])))
    return CallResult(outcome)


def uncall(day: date, doctor_id: int, result: CallResult, restore: bool = True) -> None:
    """Undo `call`: the token goes back to its place (unless `restore` is False: it was not
    waiting after all) and the previous current token comes back."""
    _run(
        _UNCALL,
        [prefix(day)],
        [
            TTL_SECONDS,
            str(doctor_id),
            member(result.token_number),
            result.score,
            result.previous,
            "1" if restore else "0",
        ],
    )


def clear_current(day: date, doctor_id: int, token_number: int, status: str) -> None:
    """Forget a doctor's current token when PostgreSQL says it is no longer with them, and
    record the status PostgreSQL gives it."""
    try:
        client = _client()
        key = prefix(day) + f"cur:{doctor_id}"
        if _text(client.get(key) or b"") == member(token_number):
            client.delete(key)
        client.hset(prefix(day) + f"tok:{member(token_number)}", "status", status)
    except RedisError:
        raise QueueUnavailable("The live queue is unavailable for a moment; try again.") from None


def install(day: date, counter: int, waiting: list[TokenCard], current: list[TokenCard]) -> None:
    """Load a day's queue from PostgreSQL's rows (see `_INSTALL`)."""
    payload = {
        "counter": counter,
        "waiting": [
            [str(c.doctor_id), member(c.token_number), c.score, _hash(c, TokenStatus.WAITING)]
            for c in waiting
        ],
        "current": [
            [str(c.doctor_id), member(c.token_number), _hash(c, TokenStatus.WITH_DOCTOR)]
            for c in current
        ],
        # A fresh version after a loss: above any number a board saw before it.
        "version": int(clock.now().timestamp() * 1000),
    }
    _run(_INSTALL, [prefix(day)], [TTL_SECONDS, json.dumps(payload)])


def _hash(card: TokenCard, status: str) -> dict[str, str]:
    values = card.fields()
    pairs = dict(zip(values[::2], values[1::2], strict=True))
    return {**pairs, "doctor": str(card.doctor_id), "status": status}


# Whether the day is loaded, then per doctor (ARGV) the waiting members in order, joined
# by commas: one short reply, cheap to parse, however long the queues.
_WAITING = """
local out = {redis.call('EXISTS', KEYS[1] .. 'built')}
for i, doctor in ipairs(ARGV) do
  out[i + 1] = table.concat(redis.call('ZRANGE', KEYS[1] .. 'wait:' .. doctor, 0, -1), ',')
end
return out
"""


def loaded_waiting_order(day: date, doctor_ids: list[int]) -> dict[int, list[int]] | None:
    """Each doctor's waiting token numbers, in queue order, in one round trip; None when
    the day must be loaded from PostgreSQL first."""
    built, *joined = _run(_WAITING, [prefix(day)], [str(d) for d in doctor_ids])
    if not built:
        return None
    return {
        doctor_id: [int(m) for m in _text(members).split(",")] if members else []
        for doctor_id, members in zip(doctor_ids, joined, strict=True)
    }


def waiting_order(day: date, doctor_ids: list[int]) -> dict[int, list[int]]:
    """Each doctor's waiting token numbers, in queue order (none for a day not loaded)."""
    return loaded_waiting_order(day, doctor_ids) or {d: [] for d in doctor_ids}


def rank(day: date, doctor_id: int, token_number: int) -> int | None:
    """A waiting token's place in its doctor's live order (1 = called next), or None."""
    try:
        found = _client().zrank(prefix(day) + f"wait:{doctor_id}", member(token_number))
    except RedisError:
        return None
    return None if found is None else found + 1


def board_snapshot(day: date, doctor_ids: list[int], ahead: int = 3) -> dict[int, dict]:
    """Per doctor: the current token's card and the next `ahead` waiting cards."""
    p = prefix(day)
    try:
        client = _client()
        with client.pipeline(transaction=False) as pipe:
            for doctor_id in doctor_ids:
                pipe.get(p + f"cur:{doctor_id}")
                pipe.zrange(p + f"wait:{doctor_id}", 0, ahead - 1)
            heads = pipe.execute()
        wanted: list[str] = []
        for i in range(len(doctor_ids)):
            current, nxt = heads[2 * i], heads[2 * i + 1]
            wanted.extend([_text(current)] if current else [])
            wanted.extend(_text(m) for m in nxt)
        with client.pipeline(transaction=False) as pipe:
            for m in wanted:
                pipe.hgetall(p + f"tok:{m}")
            cards = dict(zip(wanted, pipe.execute(), strict=True))
    except RedisError:
        raise QueueUnavailable("The live queue is unavailable for a moment; try again.") from None

    def plain(m: str) -> dict:
        raw = {_text(k): _text(v) for k, v in cards.get(m, {}).items()}
        return {
            "token_number": int(m),
            "display": raw.get("display", f"{int(m):03d}"),
            "initials": raw.get("initials", ""),
            "status": raw.get("status", ""),
            "urgent": raw.get("urgent") == "1",
        }

    board: dict[int, dict] = {}
    for i, doctor_id in enumerate(doctor_ids):
        current, nxt = heads[2 * i], heads[2 * i + 1]
        now_serving = plain(_text(current)) if current else None
        if now_serving and now_serving["status"] != TokenStatus.WITH_DOCTOR:
            now_serving = None
        board[doctor_id] = {"now_serving": now_serving, "next": [plain(_text(m)) for m in nxt]}
    return board


# What a board poll needs, in one round trip: is the day loaded, its version, the board
# cached for that version, and the display key's digest. KEYS: day prefix, digest key.
_PROBE = """
local p = KEYS[1]
local ver = redis.call('GET', p .. 'ver') or '0'
return {
  redis.call('EXISTS', p .. 'built'),
  ver,
  redis.call('GET', p .. 'board:' .. ver),
  redis.call('GET', KEYS[2])
}
"""
DISPLAY_DIGEST_KEY = "qure:display_key_sha256"


@dataclass(frozen=True)
class Probe:
    built: bool
    version: str
    board: str | None
    display_digest: str | None  # "-": no key is set; None: not cached


def probe(day: date) -> Probe:
    """The board's state for a day (see `_PROBE`)."""
    built, ver, board, digest = _run(_PROBE, [prefix(day), DISPLAY_DIGEST_KEY], [])
    return Probe(
        bool(built),
        _text(ver),
        _text(board) if board is not None else None,
        _text(digest) if digest is not None else None,
    )


def version(day: date) -> tuple[bool, str]:
    """Whether the day is loaded, and its version (bumped by every token change)."""
    try:
        with _client().pipeline(transaction=False) as pipe:
            pipe.exists(prefix(day) + "built")
            pipe.get(prefix(day) + "ver")
            built, ver = pipe.execute()
    except RedisError:
        raise QueueUnavailable("The live queue is unavailable for a moment; try again.") from None
    return bool(built), _text(ver) if ver is not None else "0"


def remember_display_digest(digest: str | None) -> None:
    """Cache the display key's digest ("-" for none) for the board's polls."""
    with contextlib.suppress(RedisError):
        # Short-lived: a poll that read the old key just before an admin changed it can
        # put the old digest back for no longer than this.
        _client().set(DISPLAY_DIGEST_KEY, digest or "-", ex=10)


def cached_board(day: date, ver: str) -> str | None:
    """The board text cached for a version, if any."""
    try:
        value = _client().get(prefix(day) + f"board:{ver}")
    except RedisError:
        return None
    return _text(value) if value is not None else None


def claim_board_build(day: date, ver: str) -> bool:
    """Whether this caller is the one to build the board of this version (the first to
    ask); True as well when Redis cannot say."""
    try:
        return bool(_client().set(prefix(day) + f"building:{ver}", "1", nx=True, ex=5))
    except RedisError:
        return True


def cache_board(day: date, ver: str, body: str) -> None:
    with contextlib.suppress(RedisError):
        _client().set(prefix(day) + f"board:{ver}", body, ex=60)


# The day's queue as the API answers it, cached as one key per choice of doctors
# (ARGV[1]) holding `{ver}:{stamp}` and a newline before the text, so that a new version
# replaces the old one rather than piling up beside it. ARGV[2]: the stamp of what else
# the answer shows. Returns whether the day is loaded, its version, and the text cached
# for this version and stamp, or nil.
_TODAY = """
local p = KEYS[1]
local ver = redis.call('GET', p .. 'ver') or '0'
local cached = redis.call('GET', p .. 'today:' .. ARGV[1])
local text = false
if cached then
  local head = ver .. ':' .. ARGV[2] .. '\\n'
  if string.sub(cached, 1, #head) == head then text = string.sub(cached, #head + 1) end
end
return {redis.call('EXISTS', p .. 'built'), ver, text}
"""
TODAY_TTL_SECONDS = 60


@dataclass(frozen=True)
class TodayProbe:
    built: bool
    version: str
    cached: str | None


def cached_today(day: date, doctors: str, stamp: str) -> TodayProbe:
    """The day's version and the queue text cached for it, for `doctors` ("all" or one
    doctor's id) and `stamp`, in one round trip."""
    built, ver, text = _run(_TODAY, [prefix(day)], [doctors, stamp])
    return TodayProbe(bool(built), _text(ver), _text(text) if text is not None else None)


def cache_today(day: date, ver: str, doctors: str, stamp: str, text: str) -> None:
    with contextlib.suppress(RedisError):
        key = prefix(day) + f"today:{doctors}"
        _client().set(key, f"{ver}:{stamp}\n{text}", ex=TODAY_TTL_SECONDS)


def forget_day(day: date) -> None:
    """Drop a day's keys (after closing it): the next request reloads it from PostgreSQL."""
    try:
        client = _client()
        keys = list(client.scan_iter(match=prefix(day) + "*", count=500))
        if keys:
            client.delete(*keys)
    except RedisError:
        log.warning("could not drop the queue keys of a closed day")
