"""The audit log viewer: `audit_logs` (as the outbox relay writes it) filtered by who,
what, which resource and which clinic days, newest first; each entry's changes as rows a
person can read; the filtered rows as CSV.

Indexes. Every filter combination the viewer offers is an equality match on some of
`user.id`, `action`, `resource.type` (+ `resource.id`) and maybe a range on `timestamp`,
sorted by `seq` descending. Following MongoDB's Equality-Sort-Range rule, each equality
combination has an index of exactly those fields, then `seq`, then `timestamp`: MongoDB
walks it in seq order (no in-memory sort, ever), and checks a date range from the index
keys without fetching the documents outside it. The combination without equality uses
("seq", "timestamp"). A resource id is matched only with its resource type (an id alone
names nothing: patient 7 and invoice 7 are different things), which keeps the
combinations to twelve.

Dropdowns. The actions and resource types offered are `distinct()` on `action` and
`resource.type`: exactly what the log holds (a fixed vocabulary grepped from the code
would miss computed names such as APPOINTMENT_ACTIONS and go stale), and on MongoDB each
is a DISTINCT_SCAN of an index led by that field (one index entry per distinct value).
The answer is kept for five minutes (`vocabulary`).

A resource id is matched as a number or as text (`$in`: records name most resources by
number, a few by name); MongoDB walks each point's run of the index and merges them in
seq order, so that is still no in-memory sort.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from qure.auth.models import User
from qure.core import clock, documents
from qure.core.errors import InvalidInput
from qure.core.models import AUDIT_TOPIC
from qure.core.pagination import Page
from qure.extensions import db, mongo

COLLECTION = AUDIT_TOPIC
SORT = [("seq", -1)]
MAX_TEXT = 64

# The equality fields a filter may use, in the order the indexes list them.
EQUALITY_FIELDS = ("user.id", "action", "resource.type", "resource.id")


def _equality_sets() -> list[tuple[str, ...]]:
    """Every equality combination the viewer offers (resource.id only with resource.type)."""
    found = []
    for n in range(len(EQUALITY_FIELDS) + 1):
        for combo in itertools.combinations(EQUALITY_FIELDS, n):
            if "resource.id" in combo and "resource.type" not in combo:
                continue
            found.append(combo)
    return found


INDEXES = [
    documents.index(COLLECTION, *[(f, 1) for f in combo], ("seq", -1), ("timestamp", -1))
    for combo in _equality_sets()
]

CSV_HEADER = (
    "seq",
    "timestamp",
    "user_id",
    "user_name",
    "role",
    "action",
    "resource_type",
    "resource_id",
    "changes",
    "ip",
    "request_id",
)


@dataclass(frozen=True)
class Filters:
    """What the viewer is asked for; every part optional. Days are clinic days, both
    included."""

    user_id: int | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    start: date | None = None
    end: date | None = None

    def args(self) -> dict[str, Any]:
        """The filters as query-string parameters (for links that keep them)."""
        found = {
            "user_id": self.user_id,
            "action": self.action,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
        }
        return {k: v for k, v in found.items() if v is not None}


def _conflicts(filters: Filters) -> dict[str, str]:
    problems = {}
    if filters.resource_id is not None and filters.resource_type is None:
        problems["resource_id"] = "Choose the resource type too: an id alone names nothing."
    if filters.start and filters.end and filters.start > filters.end:
        problems["from"] = clock.BACKWARDS
    return problems


def check(filters: Filters) -> Filters:
    """Refuse filters that cannot go together. Raises InvalidInput naming the parameter
    (`resource_id`, `from`); returns `filters`."""
    problems = _conflicts(filters)
    if problems:
        raise InvalidInput.naming(problems)
    return filters


def _text(value: str | None, name: str, problems: dict[str, str]) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if len(value) > MAX_TEXT or not value.isprintable():
        problems[name] = f"At most {MAX_TEXT} printable characters."
        return None
    return value


def parse(args: Mapping[str, str]) -> Filters:
    """Filters from query-string text (user_id, action, resource_type, resource_id, from,
    to; days as staff type them). Raises InvalidInput naming every bad parameter."""
    problems: dict[str, str] = {}
    user_id = None
    typed_user = (args.get("user_id") or "").strip()
    if typed_user:
        if typed_user.isascii() and typed_user.isdigit() and len(typed_user) <= 18:
            user_id = int(typed_user)
        else:
            problems["user_id"] = "Choose a member of staff."
    days: dict[str, date | None] = {}
    for name in ("from", "to"):
        typed = (args.get(name) or "").strip()
        days[name] = None
        if typed:
            try:
                days[name] = clock.parse_day(typed)
            except ValueError:
                problems[name] = "Enter the date as day, month and year, like 02 Dec 2026."
    found = Filters(
        user_id=user_id,
        action=_text(args.get("action"), "action", problems),
        resource_type=_text(args.get("resource_type"), "resource_type", problems),
        resource_id=_text(args.get("resource_id"), "resource_id", problems),
        start=days["from"],
        end=days["to"],
    )
    for name, message in _conflicts(found).items():
        problems.setdefault(name, message)
    if problems:
        raise InvalidInput.naming(problems)
    return found


def _resource_id(text: str) -> list[Any]:
    """A typed resource id matches the id as the record holds it: a number for most
    resources, text for some (a username, a setting's name)."""
    ids: list[Any] = [text]
    if text.isascii() and text.lstrip("-").isdigit() and len(text) <= 18:
        ids.insert(0, int(text))
    return ids


def query(filters: Filters) -> dict[str, Any]:
    """The MongoDB query of `filters`: equality on the fields given, a range on
    `timestamp` for the days."""
    found: dict[str, Any] = {}
    if filters.user_id is not None:
        found["user.id"] = filters.user_id
    if filters.action is not None:
        found["action"] = filters.action
    if filters.resource_type is not None:
        found["resource.type"] = filters.resource_type
    if filters.resource_id is not None:
        ids = _resource_id(filters.resource_id)
        found["resource.id"] = ids[0] if len(ids) == 1 else {"$in": ids}
    if filters.start is not None or filters.end is not None:
        found["timestamp"] = documents.day_range(filters.start, filters.end)
    return found


# ---- what a person reads -------------------------------------------------------------


def _shown(value: Any) -> str:
    """A value as the diff shows it: text as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as dotted keys (a.b); lists and empty dicts stay whole."""
    if not isinstance(value, dict) or (not value and prefix):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


def diff_rows(changes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """An entry's `changes {old, new}` as rows `{field, before, after, kind}` (kind:
    added, removed, changed), nested values flattened to dotted fields, other values as
    compact JSON. A created record has only `after`s, a deleted one only `before`s; a
    field that did not change is left out."""
    changes = changes or {}
    old, new = changes.get("old"), changes.get("new")
    before = _flat(old) if isinstance(old, dict) else ({} if old is None else {"value": old})
    after = _flat(new) if isinstance(new, dict) else ({} if new is None else {"value": new})
    rows = []
    for field in sorted(set(before) | set(after)):
        was, now = before.get(field), after.get(field)
        if was == now and field in before and field in after:
            continue
        if was is None:
            kind = "added"
        elif now is None:
            kind = "removed"
        else:
            kind = "changed"
        rows.append(
            {
                "field": field,
                "before": None if was is None else _shown(was),
                "after": None if now is None else _shown(now),
                "kind": kind,
            }
        )
    return rows


def _utc(stamp: datetime | None) -> datetime | None:
    if stamp is not None and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp


def entry(document: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record as the viewer shows it (plain values; `timestamp` aware UTC)."""
    resource = document.get("resource") or {}
    changes = document.get("changes") or {}
    return {
        "seq": document.get("seq"),
        "timestamp": _utc(document.get("timestamp")),
        "user": document.get("user"),
        "action": document.get("action"),
        "resource": {"type": resource.get("type"), "id": resource.get("id")},
        "changes": {"old": changes.get("old"), "new": changes.get("new")},
        "ip": document.get("ip"),
        "request_id": document.get("request_id"),
        "hash": document.get("hash"),
        "prev_hash": document.get("prev_hash"),
        "diff": diff_rows(changes),
    }


# ---- reading the log -----------------------------------------------------------------


def entries(filters: Filters, page: int = 1, per_page: int = 50) -> Page:
    """One page of the records matching `filters`, newest first, as `entry` dicts.
    Raises InvalidInput (page bounds) and AnalyticsUnavailable (MongoDB down)."""
    found = documents.page_of(COLLECTION, query(filters), SORT, page, per_page)
    found.items = [entry(d) for d in found.items]
    return found


def each_entry(filters: Filters) -> Iterator[dict[str, Any]]:
    """Every record matching `filters`, newest first, read in batches (for CSV). Raises
    AnalyticsUnavailable while iterating when MongoDB does not answer."""
    for document in documents.each(COLLECTION, query(filters), SORT):
        yield entry(document)


def csv_row(item: Mapping[str, Any]) -> list[Any]:
    """An entry as a CSV row (columns of CSV_HEADER)."""
    user = item["user"] or {}
    stamp = item["timestamp"]
    return [
        item["seq"],
        stamp.isoformat() if stamp else "",
        user.get("id"),
        user.get("name"),
        user.get("role"),
        item["action"],
        item["resource"]["type"],
        item["resource"]["id"],
        json.dumps(item["changes"], ensure_ascii=False, separators=(",", ":"), sort_keys=True),
        item["ip"],
        item["request_id"],
    ]


def csv_rows(filters: Filters) -> Iterator[list[Any]]:
    """The CSV rows of every record matching `filters`. The first batch is read before
    this returns, so that a MongoDB that does not answer is a 503 (AnalyticsUnavailable)
    rather than a download cut short after its header."""
    rows = (csv_row(item) for item in each_entry(filters))
    with documents.reading():
        first = next(rows, None)
    return iter(()) if first is None else itertools.chain([first], rows)


VOCABULARY_SECONDS = 300
_vocabulary: dict[str, Any] = {}
_vocabulary_lock = threading.Lock()


def vocabulary() -> dict[str, list[str]]:
    """The actions and resource types the log holds, sorted, for the filter dropdowns.

    Kept for VOCABULARY_SECONDS per document store: a new kind of record joins the
    dropdowns within five minutes. On MongoDB each `distinct` walks an index; the embedded
    store (mongomock) has no index and copies every document to answer, which is what
    the keeping saves. Raises AnalyticsUnavailable when the store does not answer."""
    now = time.monotonic()
    kept = _vocabulary
    # The client itself is kept (not its id), so a new store never inherits an old answer.
    if kept.get("client") is mongo.client and now - kept["at"] < VOCABULARY_SECONDS:
        return kept["value"]
    coll = mongo.db[COLLECTION]
    with documents.reading():
        actions = coll.distinct("action")
        types = coll.distinct("resource.type")
    value = {
        "actions": sorted(a for a in actions if isinstance(a, str)),
        "resource_types": sorted(t for t in types if isinstance(t, str)),
    }
    with _vocabulary_lock:
        _vocabulary.update(client=mongo.client, at=now, value=value)
    return value


def staff() -> list[dict[str, Any]]:
    """Every user (active or not: old records name them), by name, for the user select."""
    rows = db.session.execute(
        select(User.id, User.full_name, User.role).order_by(User.full_name, User.id)
    )
    return [{"id": r.id, "name": r.full_name, "role": str(r.role)} for r in rows]
