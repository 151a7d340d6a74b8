"""`/api/v1/reports/audit-logs` (ADMIN): the audit log filtered, newest first, as pages of
JSON or every matching record as CSV; and `/audit-logs/verify`, the hash chain's check.
Thin: the reading is `qure.reports.audit`."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from qure.core import exports, outbox
from qure.core.db import MAX_BIG_ID
from qure.core.documents import reading
from qure.core.roles import Role, api_roles
from qure.core.schemas import ClinicDay, ErrorSchema, PageArgs, page_body, page_schema
from qure.reports import audit
from qure.reports.blueprints import blp

TEXT = validate.Length(min=1, max=audit.MAX_TEXT)


class AuditArgs(PageArgs):
    user_id = fields.Integer(
        validate=validate.Range(min=1, max=MAX_BIG_ID),
        metadata={"description": "The user who acted"},
    )
    action = fields.String(validate=TEXT, metadata={"example": "INVOICE_PAID"})
    resource_type = fields.String(validate=TEXT, metadata={"example": "patient"})
    resource_id = fields.String(
        validate=TEXT, metadata={"description": "Only with resource_type", "example": "17"}
    )
    from_ = ClinicDay(data_key="from", metadata={"description": "First clinic day (included)"})
    to = ClinicDay(metadata={"description": "Last clinic day (included)"})
    format = fields.String(
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "csv: every matching record (or send Accept: text/csv)"},
    )


class AuditUserSchema(Schema):
    id = fields.Raw(allow_none=True, metadata={"description": "User id"})
    name = fields.String(allow_none=True)
    role = fields.String(allow_none=True)


class AuditResourceSchema(Schema):
    type = fields.String()
    id = fields.Raw(allow_none=True, metadata={"description": "A number or text"})


class AuditChangesSchema(Schema):
    old = fields.Dict(allow_none=True, metadata={"description": "Before (null on create)"})
    new = fields.Dict(allow_none=True, metadata={"description": "After (null on delete)"})


class AuditLogSchema(Schema):
    seq = fields.Integer(metadata={"description": "Place in the hash chain (1, 2, ...)"})
    timestamp = fields.DateTime(
        format="iso", metadata={"description": "When, ISO 8601 with offset (UTC)"}
    )
    user = fields.Nested(AuditUserSchema, allow_none=True)
    action = fields.String(metadata={"example": "INVOICE_PAID"})
    resource = fields.Nested(AuditResourceSchema)
    changes = fields.Nested(AuditChangesSchema)
    ip = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    hash = fields.String(metadata={"description": "SHA-256 of prev_hash and the record"})
    prev_hash = fields.String()


AuditLogPage = page_schema(AuditLogSchema, "AuditLogPage")


class VerifySchema(Schema):
    ok = fields.Boolean()
    checked = fields.Integer(metadata={"description": "Records checked"})
    problems = fields.List(
        fields.String(), metadata={"example": ["seq 17: contents do not match its hash"]}
    )


def _filters(args) -> audit.Filters:
    return audit.check(
        audit.Filters(
            user_id=args.get("user_id"),
            action=args.get("action"),
            resource_type=args.get("resource_type"),
            resource_id=args.get("resource_id"),
            start=args.get("from_"),
            end=args.get("to"),
        )
    )


@blp.get("/audit-logs")
@api_roles(Role.ADMIN)
@blp.arguments(AuditArgs, location="query")
@blp.response(200, AuditLogPage)
@blp.doc(
    responses={
        "200": {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AuditLogPage"}},
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": ",".join(audit.CSV_HEADER),
                },
            }
        }
    }
)
@blp.alt_response(422, schema=ErrorSchema)
@blp.alt_response(503, schema=ErrorSchema, description="analytics_unavailable")
def audit_logs(args):
    """The audit log, newest first, filtered by user, action, resource (type, and id with
    it) and clinic days (`from`, `to`, both included). With `format=csv` or `Accept:
    text/csv`, every matching record as CSV."""
    filters = _filters(args)
    if args.get("format") == "csv" or (args.get("format") is None and exports.wants_csv()):
        rows = audit.csv_rows(filters)
        return exports.csv_response("audit-log.csv", audit.CSV_HEADER, rows)
    return page_body(audit.entries(filters, args["page"], args["per_page"]))


@blp.post("/audit-logs/verify")
@api_roles(Role.ADMIN)
@blp.response(200, VerifySchema)
@blp.alt_response(503, schema=ErrorSchema, description="analytics_unavailable")
def verify_audit_logs():
    """Recompute the audit hash chain: `ok`, how many records were `checked`, and each
    break (a record changed, missing, or the chain's end differing from the journal)."""
    with reading():
        report = outbox.verify()
    return {"ok": report.ok, "checked": report.checked, "problems": report.problems}
