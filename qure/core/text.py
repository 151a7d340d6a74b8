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
