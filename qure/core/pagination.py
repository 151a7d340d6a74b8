"""Pages of results: `{items, page, per_page, total}`."""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import Any

from sqlalchemy import Integer, Select, Subquery, bindparam, func, select

from qure.core.errors import InvalidInput
from qure.extensions import db

MAX_PER_PAGE = 200
MAX_OFFSET = 10**9  # a huge offset overflows BIGINT: nothing is there anyway


@dataclass
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int
    total_capped: bool = False  # more matches than `total` (searches that stop counting)

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def check_bounds(page: int, per_page: int) -> None:
    """Raise a field error when page or per_page is out of range."""
    if page < 1:
        raise InvalidInput("page: must be 1 or more", fields={"page": "Must be 1 or more."})
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInput(
            f"per_page: must be between 1 and {MAX_PER_PAGE}",
            fields={"per_page": f"Must be between 1 and {MAX_PER_PAGE}."},
        )


def paginate(query: Select, page: int, per_page: int) -> Page:
    """Run `query` for one page and count every row it matches."""
    check_bounds(page, per_page)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    total = total or 0
    offset = (page - 1) * per_page
    # Past the last page there is nothing to fetch (and a huge offset overflows BIGINT).
    items = db.session.scalars(query.limit(per_page).offset(offset)).all() if offset < total else []
    return Page(list(items), page, per_page, total)


def page_cut(query: Select) -> Subquery:
    """One page of `query` (ordered, selecting the keys of the rows it lists) as a
    subquery named `page`, with the count of every row it matches as its column `total`
    (`count(*) OVER ()` is computed before LIMIT): join the page's details to it, so that
    one statement answers the page and its total, and only the page's rows are joined.
    The page is bound at execution (`page_params`): a statement built on it once serves
    every page (building one costs more CPU than running it)."""
    counted = query.add_columns(func.count().over().label("total"))
    limit = bindparam("page_limit", type_=Integer)
    return counted.limit(limit).offset(bindparam("page_offset", type_=Integer)).subquery("page")


def page_params(page: int, per_page: int) -> dict[str, int] | None:
    """The parameters of a statement on a `page_cut` for this page; None past any page
    there can be (nothing to fetch: see `cut_total`)."""
    check_bounds(page, per_page)
    offset = (page - 1) * per_page
    if offset >= MAX_OFFSET:
        return None
    return {"page_limit": per_page, "page_offset": offset}


def cut_total(query: Select, rows: list[Any], page: int) -> int:
    """The total of a page cut by `page_cut(query)` whose statement answered `rows`
    (each with the cut's `total`): theirs, or, for an empty page past the first, the
    count alone (one more statement)."""
    if rows:
        return rows[0].total
    if page > 1:
        counting = select(func.count()).select_from(query.order_by(None).subquery())
        return db.session.scalar(counting) or 0
    return 0
