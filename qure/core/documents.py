"""Reading MongoDB's read models: the indexes every report filter needs, pages of
documents, and a store that does not answer turned into a clear 503.

A room declares the indexes its queries use with `index(...)` at import; `ensure_indexes`
creates them all (idempotent: creating an index that exists changes nothing). It runs when
the app starts and again from the relay until it has succeeded once in the process, so a
MongoDB that was down at start gets its indexes when it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pymongo.errors import PyMongoError

from qure.core import clock
from qure.core.errors import Unavailable
from qure.core.pagination import Page, check_bounds
from qure.extensions import mongo

log = logging.getLogger(__name__)

ANALYTICS_UNAVAILABLE = (
    "Analytics are unavailable: the document store does not answer. Everything at the "
    "desks keeps working, and nothing is lost; try the report again in a few minutes."
)


class AnalyticsUnavailable(Unavailable):
    code = "analytics_unavailable"

    def __init__(self, message: str = ANALYTICS_UNAVAILABLE) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False

    @property
    def name(self) -> str:
        return "_".join(f"{field}_{direction}" for field, direction in self.keys)


_indexes: dict[tuple[str, str], IndexSpec] = {}
_ensured = False


def index(collection: str, *keys: tuple[str, int], unique: bool = False) -> IndexSpec:
    """Declare an index on `collection` (keys as (field, 1 or -1) pairs)."""
    spec = IndexSpec(collection, tuple(keys), unique)
    _indexes[(collection, spec.name)] = spec
    return spec


def declared_indexes() -> list[IndexSpec]:
    return list(_indexes.values())


def ensure_indexes() -> bool:
    """Create every declared index that MongoDB lacks. Returns whether it succeeded (a
    MongoDB outage is logged, never raised)."""
    global _ensured
    try:
        for spec in _indexes.values():
            mongo.db[spec.collection].create_index(
                list(spec.keys), name=spec.name, unique=spec.unique
            )
    except PyMongoError as exc:
        log.warning("MongoDB indexes not created yet (%s); retried later", type(exc).__name__)
        return False
    _ensured = True
    return True


def ensure_indexes_once() -> None:
    """`ensure_indexes` unless it already succeeded in this process (the relay calls it)."""
    if not _ensured:
        ensure_indexes()


@contextmanager
def reading() -> Iterator[None]:
    """Turn MongoDB not answering into `AnalyticsUnavailable` (503 analytics_unavailable)."""
    try:
        yield
    except PyMongoError:
        raise AnalyticsUnavailable() from None


def day_range(start: date | None, end: date | None) -> dict[str, datetime]:
    """The query on a timestamp for the clinic days from `start` to `end`, both included
    (either may be open): `{"$gte": start's midnight, "$lt": the midnight after end}`."""
    found: dict[str, datetime] = {}
    if start is not None:
        found["$gte"] = clock.day_bounds(start)[0]
    if end is not None:
        found["$lt"] = clock.day_bounds(end)[1]
    return found


def page_of(
    collection: str,
    query: dict[str, Any],
    sort: list[tuple[str, int]],
    page: int,
    per_page: int,
    projection: dict[str, Any] | None = None,
) -> Page:
    """One page of `collection`'s documents matching `query`, in `sort` order, with the
    total count. Raises AnalyticsUnavailable when MongoDB does not answer."""
    check_bounds(page, per_page)
    coll = mongo.db[collection]
    with reading():
        total = coll.count_documents(query) if query else coll.estimated_document_count()
        skip = (page - 1) * per_page
        items = (
            list(coll.find(query, projection, sort=sort, skip=skip, limit=per_page))
            if skip < total
            else []
        )
    return Page(items, page, per_page, total)


def each(
    collection: str, query: dict[str, Any], sort: list[tuple[str, int]], batch: int = 500
) -> Iterator[dict[str, Any]]:
    """Every matching document in `sort` order, read in batches (for CSV downloads)."""
    with reading():
        yield from mongo.db[collection].find(query, sort=sort, batch_size=batch)
