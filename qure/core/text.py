"""Free text typed by staff: one cleaning rule for every field that takes it."""

from __future__ import annotations

from typing import Any

from qure.core.errors import InvalidInput


def plain_text(value: Any, field: str, limit: int) -> str | None:
    """`value` with its whitespace collapsed, or None when there is nothing. Raises
    InvalidInput naming `field` for a NUL character (PostgreSQL text cannot hold one) or
    more than `limit` characters."""
    if value is None:
        return None
    cleaned = " ".join(str(value).split())
    if "\x00" in cleaned or len(cleaned) > limit:
        raise InvalidInput.naming({field: f"At most {limit} characters of plain text."})
    return cleaned or None


def like_escape(value: str) -> str:
    """`value` for a LIKE pattern, its `%`, `_` and backslash matched as themselves
    (PostgreSQL's default escape character is the backslash)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
