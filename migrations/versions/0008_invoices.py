"""billing: invoices, lines, payments, credit notes and the day's close

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 22:40:00

"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE invoices (
    id serial PRIMARY KEY,
    number varchar(24) UNIQUE,
    mode varchar(8) NOT NULL,
    status varchar(10) NOT NULL,
    patient_id bigint NOT NULL REFERENCES patients (id),
    visit_id integer REFERENCES visits (id),
    prescription_id integer REFERENCES prescriptions (id),
    invoice_date date NOT NULL,
    discount_type varchar(8),
    discount_value numeric(12, 2),
    subtotal numeric(12, 2) NOT NULL,
    discount numeric(12, 2) NOT NULL,
    taxable numeric(12, 2) NOT NULL,
    cgst numeric(12, 2) NOT NULL,
    sgst numeric(12, 2) NOT NULL,
    total numeric(12, 2) NOT NULL,
    cancel_reason varchar(300),
    created_by_id integer NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL,
    finalized_at timestamptz,
    paid_at timestamptz,
    cancelled_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_invoices_status CHECK (status IN ('DRAFT', 'PENDING', 'PAID', 'CANCELLED')),
    CONSTRAINT ck_invoices_mode CHECK (mode IN ('AUTO', 'MANUAL')),
    CONSTRAINT ck_invoices_discount_type CHECK (discount_type IS NULL
        OR discount_type IN ('PERCENT', 'AMOUNT')),
    CONSTRAINT ck_invoices_amounts CHECK (subtotal >= 0 AND discount >= 0
        AND discount <= subtotal AND taxable >= 0 AND cgst >= 0 AND sgst >= 0
        AND total = taxable + cgst + sgst),
    CONSTRAINT ck_invoices_numbered CHECK (status = 'DRAFT' OR status = 'CANCELLED'
        OR number IS NOT NULL),
    CONSTRAINT ck_invoices_auto_visit CHECK (mode = 'MANUAL' OR visit_id IS NOT NULL)
);
-- At most one invoice that is not cancelled per prescription, and one AUTO per visit.
CREATE UNIQUE INDEX uq_invoices_prescription ON invoices (prescription_id)
    WHERE status <> 'CANCELLED' AND prescription_id IS NOT NULL;
CREATE UNIQUE INDEX uq_invoices_auto_visit ON invoices (visit_id)
    WHERE status <> 'CANCELLED' AND mode = 'AUTO';
CREATE INDEX ix_invoices_patient ON invoices (patient_id, created_at);
CREATE INDEX ix_invoices_date ON invoices (invoice_date, id);
CREATE INDEX ix_invoices_status ON invoices (status, invoice_date);

CREATE TABLE invoice_lines (
    id serial PRIMARY KEY,
    invoice_id integer NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    position smallint NOT NULL,
    kind varchar(14) NOT NULL,
    description varchar(200) NOT NULL,
    hsn_sac varchar(8),
    medicine_id integer REFERENCES medicines (id),
    prescription_item_id integer REFERENCES prescription_items (id) ON DELETE SET NULL,
    quantity numeric(10, 2) NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    gst_rate smallint NOT NULL,
    value numeric(12, 2) NOT NULL,
    discount numeric(12, 2) NOT NULL,
    taxable numeric(12, 2) NOT NULL,
    cgst numeric(12, 2) NOT NULL,
    sgst numeric(12, 2) NOT NULL,
    total numeric(12, 2) NOT NULL,
    CONSTRAINT ck_invoice_lines_kind CHECK (kind IN ('CONSULTATION', 'MEDICINE', 'PROCEDURE',
        'LAB', 'IMAGING', 'OTHER')),
    CONSTRAINT ck_invoice_lines_quantity CHECK (quantity > 0),
    CONSTRAINT ck_invoice_lines_price CHECK (unit_price >= 0),
    CONSTRAINT ck_invoice_lines_rate CHECK (gst_rate IN (0, 5, 12, 18, 28)),
    CONSTRAINT ck_invoice_lines_amounts CHECK (discount >= 0 AND discount <= value
        AND taxable = value - discount AND total = taxable + cgst + sgst)
);
CREATE UNIQUE INDEX uq_invoice_lines_position ON invoice_lines (invoice_id, position);

CREATE TABLE payments (
    id serial PRIMARY KEY,
    invoice_id integer NOT NULL UNIQUE REFERENCES invoices (id),
    method varchar(4) NOT NULL,
    amount numeric(12, 2) NOT NULL,
    reference varchar(100),
    tendered numeric(12, 2),
    change numeric(12, 2),
    paid_on date NOT NULL,
    received_by_id integer NOT NULL REFERENCES users (id),
    received_at timestamptz NOT NULL,
    idempotency_key varchar(200) UNIQUE,
    request_digest varchar(64),
    CONSTRAINT ck_payments_method CHECK (method IN ('CASH', 'CARD', 'UPI')),
    CONSTRAINT ck_payments_amount CHECK (amount >= 0),
    CONSTRAINT ck_payments_reference CHECK (method = 'CASH' OR reference IS NOT NULL),
    CONSTRAINT ck_payments_change CHECK (tendered IS NULL
        OR (tendered >= amount AND change = tendered - amount))
);
CREATE INDEX ix_payments_paid_on ON payments (paid_on, method);

CREATE TABLE credit_notes (
    id serial PRIMARY KEY,
    number varchar(24) NOT NULL UNIQUE,
    invoice_id integer NOT NULL REFERENCES invoices (id),
    method varchar(4) NOT NULL,
    reason varchar(300) NOT NULL,
    taxable numeric(12, 2) NOT NULL,
    cgst numeric(12, 2) NOT NULL,
    sgst numeric(12, 2) NOT NULL,
    total numeric(12, 2) NOT NULL,
    issued_on date NOT NULL,
    created_by_id integer NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL,
    CONSTRAINT ck_credit_notes_method CHECK (method IN ('CASH', 'CARD', 'UPI')),
    CONSTRAINT ck_credit_notes_amounts CHECK (total > 0 AND total = taxable + cgst + sgst)
);
CREATE INDEX ix_credit_notes_issued_on ON credit_notes (issued_on, method);
CREATE INDEX ix_credit_notes_invoice ON credit_notes (invoice_id);

CREATE TABLE credit_note_lines (
    id serial PRIMARY KEY,
    credit_note_id integer NOT NULL REFERENCES credit_notes (id) ON DELETE CASCADE,
    invoice_line_id integer NOT NULL REFERENCES invoice_lines (id),
    quantity numeric(10, 2) NOT NULL,
    taxable numeric(12, 2) NOT NULL,
    cgst numeric(12, 2) NOT NULL,
    sgst numeric(12, 2) NOT NULL,
    total numeric(12, 2) NOT NULL,
    CONSTRAINT ck_credit_note_lines_quantity CHECK (quantity > 0),
    CONSTRAINT ck_credit_note_lines_amounts CHECK (taxable >= 0 AND cgst >= 0 AND sgst >= 0
        AND total = taxable + cgst + sgst)
);
CREATE INDEX ix_credit_note_lines_line ON credit_note_lines (invoice_line_id);

CREATE TABLE day_closes (
    id serial PRIMARY KEY,
    day date NOT NULL UNIQUE,
    expected_cash numeric(12, 2) NOT NULL,
    expected_card numeric(12, 2) NOT NULL,
    expected_upi numeric(12, 2) NOT NULL,
    payments numeric(12, 2) NOT NULL,
    refunds numeric(12, 2) NOT NULL,
    cash_counted numeric(12, 2) NOT NULL,
    variance numeric(12, 2) NOT NULL,
    note varchar(500),
    closed_by_id integer NOT NULL REFERENCES users (id),
    closed_at timestamptz NOT NULL,
    CONSTRAINT ck_day_closes_counted CHECK (cash_counted >= 0),
    CONSTRAINT ck_day_closes_variance CHECK (variance = cash_counted - expected_cash)
);
"""


def upgrade():
    op.execute(UPGRADE)


def downgrade():
    op.execute(
        "DROP TABLE day_closes, credit_note_lines, credit_notes, payments, invoice_lines, "
        "invoices"
    )
