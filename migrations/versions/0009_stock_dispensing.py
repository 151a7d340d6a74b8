"""pharmacy: drug schedules, stock batches, dispensing and the Schedule H1 register

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:30:00

"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE medicines ADD COLUMN schedule varchar(4) NOT NULL DEFAULT 'NONE';
ALTER TABLE medicines ADD CONSTRAINT ck_medicines_schedule
    CHECK (schedule IN ('NONE', 'H', 'H1', 'X'));

-- A prescription's dispense state, kept by the pharmacy's dispensing.
ALTER TABLE prescriptions ADD COLUMN dispense_status varchar(20) NOT NULL DEFAULT 'AWAITING';
ALTER TABLE prescriptions ADD CONSTRAINT ck_prescriptions_dispense_status
    CHECK (dispense_status IN ('AWAITING', 'PARTIALLY_DISPENSED', 'DISPENSED'));
CREATE INDEX ix_prescriptions_to_dispense ON prescriptions (created_at, id)
    WHERE dispense_status <> 'DISPENSED';

CREATE TABLE batches (
    id serial PRIMARY KEY,
    medicine_id integer NOT NULL REFERENCES medicines (id),
    batch_number varchar(40) NOT NULL,
    quantity integer NOT NULL,
    expiry_date date NOT NULL,
    mfg_date date,
    supplier varchar(120),
    purchase_price numeric(12, 2),
    received_by_id integer NOT NULL REFERENCES users (id),
    received_at timestamptz NOT NULL,
    CONSTRAINT uq_batches_medicine_number UNIQUE (medicine_id, batch_number),
    CONSTRAINT ck_batches_quantity CHECK (quantity >= 0),
    CONSTRAINT ck_batches_dates CHECK (mfg_date IS NULL OR mfg_date <= expiry_date),
    CONSTRAINT ck_batches_price CHECK (purchase_price IS NULL OR purchase_price >= 0)
);
-- Earliest expiry first, among the batches still holding stock.
CREATE INDEX ix_batches_fefo ON batches (medicine_id, expiry_date, id) WHERE quantity > 0;
CREATE INDEX ix_batches_expiry ON batches (expiry_date, id) WHERE quantity > 0;

CREATE TABLE dispensings (
    id serial PRIMARY KEY,
    prescription_id integer NOT NULL REFERENCES prescriptions (id),
    dispensed_by_id integer NOT NULL REFERENCES users (id),
    dispensed_at timestamptz NOT NULL,
    partial boolean NOT NULL DEFAULT false
);
CREATE INDEX ix_dispensings_prescription ON dispensings (prescription_id);
CREATE INDEX ix_dispensings_at ON dispensings (dispensed_at);

CREATE TABLE dispensed_items (
    id serial PRIMARY KEY,
    dispensing_id integer NOT NULL REFERENCES dispensings (id) ON DELETE CASCADE,
    prescription_item_id integer NOT NULL REFERENCES prescription_items (id),
    batch_id integer NOT NULL REFERENCES batches (id),
    quantity integer NOT NULL,
    returned_quantity integer NOT NULL DEFAULT 0,
    CONSTRAINT ck_dispensed_items_quantity CHECK (quantity > 0),
    CONSTRAINT ck_dispensed_items_returned CHECK (returned_quantity >= 0
        AND returned_quantity <= quantity)
);
CREATE INDEX ix_dispensed_items_dispensing ON dispensed_items (dispensing_id);
CREATE INDEX ix_dispensed_items_item ON dispensed_items (prescription_item_id);

-- The register the Drugs and Cosmetics Rules ask for Schedule H1 (and X) medicines:
-- copied at dispensing (names as they were then), never changed or removed.
CREATE TABLE h1_register (
    id bigserial PRIMARY KEY,
    entry_date date NOT NULL,
    dispensed_at timestamptz NOT NULL,
    patient_name varchar(120) NOT NULL,
    patient_address text,
    doctor_name varchar(120) NOT NULL,
    doctor_registration varchar(60),
    medicine_name varchar(200) NOT NULL,
    schedule varchar(4) NOT NULL,
    batch_number varchar(40) NOT NULL,
    expiry_date date NOT NULL,
    quantity integer NOT NULL,
    pharmacist_name varchar(120) NOT NULL,
    dispensing_id integer NOT NULL REFERENCES dispensings (id),
    dispensed_item_id integer NOT NULL REFERENCES dispensed_items (id),
    CONSTRAINT ck_h1_register_schedule CHECK (schedule IN ('H1', 'X')),
    CONSTRAINT ck_h1_register_quantity CHECK (quantity > 0)
);
CREATE INDEX ix_h1_register_date ON h1_register (entry_date, id);

-- Append-only: a row, once written, is neither changed nor deleted (TRUNCATE, which the
-- tests use to empty tables, is not a row change).
CREATE FUNCTION h1_register_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the H1 register is append-only' USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER h1_register_append_only BEFORE UPDATE OR DELETE ON h1_register
    FOR EACH ROW EXECUTE FUNCTION h1_register_append_only();
"""


def upgrade():
    op.execute(UPGRADE)


def downgrade():
    op.execute(
        "DROP TABLE h1_register, dispensed_items, dispensings, batches; "
        "DROP FUNCTION h1_register_append_only(); "
        "DROP INDEX ix_prescriptions_to_dispense; "
        "ALTER TABLE prescriptions DROP COLUMN dispense_status; "
        "ALTER TABLE medicines DROP COLUMN schedule"
    )
