"""Schemas shared by every API: errors and pagination."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from marshmallow import Schema, fields, validate

from qure.core import clock
from qure.core.pagination import MAX_PER_PAGE


class ClinicDay(fields.Date):
    """A date as staff type it (ISO, "02 Dec 2026", 02/12/2026: see `clock.parse_day`),
    read as a `date`; empty text is no date."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if not value.strip():
            return None
        try:
            return clock.parse_day(value)
        except ValueError:
            raise self.make_error("invalid") from None


class ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields")
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBody, required=True)


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PER_PAGE))


def page_schema(item: type[Schema], name: str, capped: bool = False) -> type[Schema]:
    """A `{items, page, per_page, total}` schema for a list of `item`; with `capped`, also
    `total_capped` (a search that stops counting: there are more than `total`)."""
    shape = {
        "items": fields.List(fields.Nested(item)),
        "page": fields.Integer(),
        "per_page": fields.Integer(),
        "total": fields.Integer(),
    }
    if capped:
        shape["total_capped"] = fields.Boolean(
            metadata={"description": "True when there are more matches than `total`."}
        )
    return Schema.from_dict(shape, name=name)


def page_body(page) -> dict:
    return {
        "items": page.items,
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
        "total_capped": page.total_capped,
    }


def listed_page(page, items: list[dict[str, Any]]) -> Response:
    """A page (of a `page_schema` without `capped`) whose `items` are already what its
    item schema dumps (a `listed` function next to the schema): sent as it is, in the
    schema's order, not dumped again."""
    return jsonify(
        {"items": items, "page": page.page, "per_page": page.per_page, "total": page.total}
    )
