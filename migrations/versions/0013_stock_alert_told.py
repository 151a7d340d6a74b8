"""pharmacy: who was told each morning's stock alerts, one row per pharmacist and day

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 15:00:00

The day's `stock_alert_days` row is committed before any message goes out; each
pharmacist's message is then claimed (this row, inserted before the send and committed
after it), so a send that fails half-way and its retry tell only those not told yet.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE stock_alert_told (
    day date NOT NULL REFERENCES stock_alert_days (day) ON DELETE CASCADE,
    user_id integer NOT NULL REFERENCES users (id),
    channel varchar(20) NOT NULL,
    told_at timestamptz NOT NULL,
    PRIMARY KEY (day, user_id)
);
"""


def upgrade():
    op.execute(UPGRADE)


def downgrade():
    op.execute("DROP TABLE stock_alert_told")
