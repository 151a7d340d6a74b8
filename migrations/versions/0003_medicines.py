"""medicine catalogue

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 07:00:00

"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE medicines (
    id serial PRIMARY KEY,
    name varchar(120) NOT NULL,
    generic_name varchar(400) NOT NULL,
    ingredients varchar(120)[] NOT NULL,
    drug_class varchar(80),
    dosage_form varchar(12) NOT NULL,
    strength varchar(60) NOT NULL,
    manufacturer varchar(120),
    unit_price numeric(12, 2) NOT NULL,
    gst_rate smallint NOT NULL,
    hsn_code varchar(8),
    reorder_level integer NOT NULL DEFAULT 0,
    is_active boolean NOT NULL DEFAULT true,
    search_text varchar(700) NOT NULL,
    created_by_id integer REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_medicines_form CHECK (dosage_form IN ('TABLET', 'CAPSULE', 'SYRUP',
        'SUSPENSION', 'INJECTION', 'OINTMENT', 'CREAM', 'DROPS', 'INHALER', 'OTHER')),
    CONSTRAINT ck_medicines_gst CHECK (gst_rate IN (0, 5, 12, 18, 28)),
    CONSTRAINT ck_medicines_price CHECK (unit_price >= 0),
    CONSTRAINT ck_medicines_reorder CHECK (reorder_level >= 0)
);
-- Unique by name + strength + form (SPEC section 7), whatever the case.
CREATE UNIQUE INDEX uq_medicines_name_strength_form
    ON medicines (lower(name), lower(strength), dosage_form);
-- Search by any part of the name, an ingredient or the class.
CREATE INDEX ix_medicines_search_trgm ON medicines USING gin (search_text gin_trgm_ops);
"""


def upgrade():
    op.execute(UPGRADE)


def downgrade():
    op.execute("DROP TABLE medicines")
