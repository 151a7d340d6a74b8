"""background jobs: reminders sent, the morning's stock alerts, a day's receipts in one PDF

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 14:15:00

"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = """
-- When the day-before reminder went out: a second run of the job sends nothing again.
ALTER TABLE appointments ADD COLUMN reminded_at timestamptz;
CREATE INDEX ix_appointments_to_remind ON appointments (start_at)
    WHERE reminded_at IS NULL AND status = 'SCHEDULED';

-- The morning's stock alerts, one row per clinic day: raised (and told) once a day.
CREATE TABLE stock_alert_days (
    day date PRIMARY KEY,
    low_stock integer NOT NULL,
    expiring_30 integer NOT NULL,
    expiring_60 integer NOT NULL,
    expiring_90 integer NOT NULL,
    expired integer NOT NULL,
    raised_at timestamptz NOT NULL
);

-- A clinic day's receipts as one PDF, made by a job and downloaded from the day close.
CREATE TABLE receipt_bundles (
    day date PRIMARY KEY,
    pdf bytea NOT NULL,
    receipts integer NOT NULL,
    made_at timestamptz NOT NULL
);
"""


def upgrade():
    op.execute(UPGRADE)


def downgrade():
    op.execute(
        "DROP TABLE receipt_bundles, stock_alert_days; "
        "DROP INDEX ix_appointments_to_remind; "
        "ALTER TABLE appointments DROP COLUMN reminded_at"
    )
