"""billing: a counter per document series and financial year

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 20:05:00

"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        """
        CREATE TABLE document_counters (
            series varchar(8) NOT NULL,
            financial_year varchar(7) NOT NULL,
            last_number integer NOT NULL,
            CONSTRAINT pk_document_counters PRIMARY KEY (series, financial_year),
            CONSTRAINT ck_document_counters_positive CHECK (last_number > 0)
        )
        """
    )


def downgrade():
    op.execute("DROP TABLE document_counters")
