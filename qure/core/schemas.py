"""Schemas shared by every API: errors and pagination."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from qure.core.pagination import MAX_PER_PAGE


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


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    """A `{items, page, per_page, total}` schema for a list of `item`."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item)),
            "page": fields.Integer(),
            "per_page": fields.Integer(),
            "total": fields.Integer(),
        },
        name=name,
    )


def page_body(page) -> dict:
    return {
        "items": page.items,
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
    }
