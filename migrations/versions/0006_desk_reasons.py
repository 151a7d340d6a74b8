"""why an appointment was cancelled and why a token became a no-show

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:10:00

"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("ALTER TABLE appointments ADD COLUMN cancel_reason varchar(200)")
    op.execute("ALTER TABLE queue_entries ADD COLUMN no_show_reason varchar(200)")


def downgrade():
    op.execute("ALTER TABLE queue_entries DROP COLUMN no_show_reason")
    op.execute("ALTER TABLE appointments DROP COLUMN cancel_reason")
