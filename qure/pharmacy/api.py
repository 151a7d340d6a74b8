"""`/api/v1/inventory`: the catalogue, batches, adjustments and stock alerts;
`/api/v1/dispensing`: dispensing and returns; `/api/v1/pharmacy/h1-register`."""

from __future__ import annotations

from flask import Response, g, request, url_for
from flask_smorest import Blueprint

from qure.core.http import transactional
from qure.core.roles import api_roles
from qure.core.schemas import ErrorSchema, PageArgs, listed_page, page_body
from qure.pharmacy import dispensing, service, stock
from qure.pharmacy.schemas import (
    AdjustIn,
    BatchArgs,
    BatchListSchema,
    BatchPage,
    BatchSchema,
    DispenseIn,
    DispensingSchema,
    ExpiringArgs,
    H1Args,
    H1Page,
    InventoryMedicinePage,
    InventoryMedicineSchema,
    MedicineArgs,
    MedicineCreateSchema,
    MedicineInSchema,
    MedicineSchema,
    ReturnIn,
    StockIn,
    listed,
)

blp = Blueprint(
    "api_medicines",
    __name__,
    url_prefix="/api/v1/inventory/medicines",
    description="Medicine catalogue",
)


def _listed_page(page) -> Response:
    """An inventory page with its items built as InventoryMedicinePage documents them
    (`schemas.listed`)."""
    return listed_page(page, listed(page.items))


@blp.get("")
@api_roles()
@blp.arguments(MedicineArgs, location="query")
@blp.response(200, InventoryMedicinePage)
def list_medicines(args):
    """Find medicines by name, ingredient or class (every word must appear), with each
    one's usable stock (batches not expired on the clinic's date) and next expiry."""
    page = stock.inventory(
        args["q"], not args["include_inactive"], args["page"], args["per_page"], args.get("stock")
    )
    return _listed_page(page)


@blp.post("")
@api_roles(*service.EDITORS)
@blp.arguments(MedicineCreateSchema)
@blp.response(201, MedicineSchema)
@blp.alt_response(409, schema=ErrorSchema, description="medicine_exists")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def create_medicine(body):
    """Add a medicine (unique by name, strength and form)."""
    medicine = service.create(g.actor, body)
    location = url_for("api_medicines.get_medicine", medicine_id=medicine.id)
    return medicine, 201, {"Location": location}


@blp.get("/<int:medicine_id>")
@api_roles()
@blp.response(200, InventoryMedicineSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_medicine(medicine_id: int):
    """One medicine, with its usable stock (batches not expired on the clinic's date) and
    next expiry."""
    medicine = service.get_medicine(medicine_id)
    return stock.medicine_row(medicine, *stock.levels([medicine.id]).get(medicine.id, (0, None)))


@blp.patch("/<int:medicine_id>")
@api_roles(*service.EDITORS)
@blp.arguments(MedicineInSchema)
@blp.response(200, MedicineSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="medicine_exists")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def update_medicine(body, medicine_id: int):
    """Change any subset of a medicine's fields (is_active false takes it off the list)."""
    medicine = service.update(g.actor, medicine_id, body)
    return medicine


# ---- batches and alerts ----------------------------------------------------------------

inventory_blp = Blueprint(
    "api_inventory",
    __name__,
    url_prefix="/api/v1/inventory",
    description="Stock: batches, adjustments, alerts",
)


def _batch_page(page) -> dict:
    body = page_body(page)
    body["items"] = [stock.batch_row(b) for b in page.items]
    return body


@inventory_blp.post("/batches")
@api_roles(*stock.EDITORS)
@inventory_blp.arguments(StockIn)
@inventory_blp.response(201, BatchListSchema)
@inventory_blp.alt_response(404, schema=ErrorSchema, description="medicine_not_found")
@inventory_blp.alt_response(409, schema=ErrorSchema, description="batch_exists")
@inventory_blp.alt_response(
    422,
    schema=ErrorSchema,
    description="fields name batches.N.field; batch_exists when only held batches are named",
)
@transactional
def stock_in(body):
    """Receive one or more batches of a medicine (one supplier's delivery): refuses
    expired stock, a manufacturing date after expiry, quantities under 1 and a batch number
    the medicine already has."""
    received = stock.stock_in(g.actor, body)
    return {"items": [stock.batch_row(b) for b in received]}


@inventory_blp.get("/batches")
@api_roles()
@inventory_blp.arguments(BatchArgs, location="query")
@inventory_blp.response(200, BatchPage)
@inventory_blp.alt_response(404, schema=ErrorSchema)
def list_batches(args):
    """A medicine's batches, earliest expiry first (empty and expired ones included)."""
    return _batch_page(stock.batches(args["medicine_id"], args["page"], args["per_page"]))


@inventory_blp.patch("/batches/<int:batch_id>")
@api_roles(*stock.EDITORS)
@inventory_blp.arguments(AdjustIn)
@inventory_blp.response(200, BatchSchema)
@inventory_blp.alt_response(404, schema=ErrorSchema, description="batch_not_found")
@inventory_blp.alt_response(409, schema=ErrorSchema, description="stock_below_zero")
@inventory_blp.alt_response(422, schema=ErrorSchema)
@transactional
def adjust_batch(body, batch_id: int):
    """Adjust a batch by a signed `delta` with a reason (DAMAGED, EXPIRED_DISPOSAL,
    COUNT_CORRECTION, RETURN_TO_SUPPLIER); never below zero."""
    return stock.batch_row(stock.adjust(g.actor, batch_id, body))


@inventory_blp.get("/low-stock")
@api_roles()
@inventory_blp.arguments(PageArgs, location="query")
@inventory_blp.response(200, InventoryMedicinePage)
def low_stock(args):
    """Every active medicine at or below its reorder level by usable stock (zero stock
    and medicines with no batch included), emptiest first."""
    return _listed_page(stock.low_stock(args["page"], args["per_page"]))


@inventory_blp.get("/expiring")
@api_roles()
@inventory_blp.arguments(ExpiringArgs, location="query")
@inventory_blp.response(200, BatchPage)
@inventory_blp.alt_response(422, schema=ErrorSchema)
def expiring(args):
    """Batches holding stock that expire within 30, 60 or 90 days (not yet expired)."""
    return _batch_page(stock.expiring(args["days"], args["page"], args["per_page"]))


@inventory_blp.get("/expired")
@api_roles()
@inventory_blp.arguments(PageArgs, location="query")
@inventory_blp.response(200, BatchPage)
def expired(args):
    """Expired batches still holding stock."""
    return _batch_page(stock.expired(args["page"], args["per_page"]))


# ---- dispensing ------------------------------------------------------------------------

dispensing_blp = Blueprint(
    "api_dispensing", __name__, url_prefix="/api/v1/dispensing", description="Dispensing"
)


@dispensing_blp.post("")
@api_roles(*dispensing.DISPENSERS)
@dispensing_blp.arguments(DispenseIn)
@dispensing_blp.response(201, DispensingSchema)
@dispensing_blp.alt_response(404, schema=ErrorSchema, description="prescription_not_found")
@dispensing_blp.alt_response(
    409,
    schema=ErrorSchema,
    description="invoice_not_paid; already_dispensed; insufficient_stock (details.items: each "
    "short item with what is due and what is usable)",
)
@dispensing_blp.alt_response(422, schema=ErrorSchema)
@transactional
def dispense(body):
    """Dispense a paid prescription, earliest expiry first (never an expired batch): all
    or nothing unless `allow_partial`. The answer lists per item the batch and quantity."""
    done = dispensing.dispense(g.actor, body)
    location = url_for("api_dispensing.get_dispensing", dispensing_id=done["id"])
    return done, 201, {"Location": location}


@dispensing_blp.get("/<int:dispensing_id>")
@api_roles()
@dispensing_blp.response(200, DispensingSchema)
@dispensing_blp.alt_response(404, schema=ErrorSchema)
def get_dispensing(dispensing_id: int):
    """One dispensing: its items with id, batch number, expiry and quantity."""
    return dispensing.get_dispensing(dispensing_id)


@dispensing_blp.post("/<int:dispensing_id>/returns")
@api_roles(*dispensing.DISPENSERS)
@dispensing_blp.arguments(ReturnIn)
@dispensing_blp.response(200, DispensingSchema)
@dispensing_blp.alt_response(404, schema=ErrorSchema, description="dispensing_not_found")
@dispensing_blp.alt_response(422, schema=ErrorSchema, description="items.N.quantity and so on")
@transactional
def return_items(body, dispensing_id: int):
    """Take unopened items back into the batch each came from (never more than was
    handed over from it, less what came back already)."""
    return dispensing.returns(g.actor, dispensing_id, body)


# ---- the H1 register -------------------------------------------------------------------

REGISTER_READERS = dispensing.REGISTER_READERS

register_blp = Blueprint(
    "api_pharmacy", __name__, url_prefix="/api/v1/pharmacy", description="Dispensing"
)


@register_blp.get("/h1-register")
@api_roles(*REGISTER_READERS)
@register_blp.arguments(H1Args, location="query")
@register_blp.response(200, H1Page)
@register_blp.doc(
    responses={
        "200": {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/H1RegisterPage"}},
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "Date,Patient,Address,Prescriber,...",
                },
            }
        }
    }
)
@register_blp.alt_response(422, schema=ErrorSchema)
def h1_register(args):
    """The Schedule H1 register (H1 and X medicines) by clinic date, both days included
    (default today): paginated JSON, or every entry of the range as CSV."""
    start, end = dispensing.register_range(args.get("from_"), args.get("to"))
    wants_csv = args.get("format") == "csv" or (
        args.get("format") is None
        and request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
    )
    if wants_csv:
        body = "".join(dispensing.h1_register_csv(start, end))
        name = f"h1-register-{start.isoformat()}-{end.isoformat()}.csv"
        return Response(
            body,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return page_body(dispensing.h1_register(start, end, args["page"], args["per_page"]))
