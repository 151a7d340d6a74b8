"""reports: the daily summary's day ranges on visits and patients read by index

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:30:00

The daily summary counts a day's visits (by `started_at`) and the patients registered
that day (by `created_at`); without these indexes each count read the whole table (a
year of a busy clinic: 73,000 visits, 35,000 patients; bench/reports.py).
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_visits_started", "visits", ["started_at"])
    op.create_index("ix_patients_created", "patients", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_patients_created", table_name="patients")
    op.drop_index("ix_visits_started", table_name="visits")
