"""imports: uploaded CSV files of patients or medicines and what became of their rows

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 09:00:00

"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE imports (
    id bigserial PRIMARY KEY,
    kind varchar(12) NOT NULL,
    filename varchar(200) NOT NULL,
    sha256 varchar(64) NOT NULL,
    size integer NOT NULL,
    content bytea NOT NULL,
    created_by_id integer NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    status varchar(10) NOT NULL DEFAULT 'QUEUED',
    job_id varchar(64) NOT NULL,
    total_rows integer NOT NULL DEFAULT 0,
    processed integer NOT NULL DEFAULT 0,
    imported integer NOT NULL DEFAULT 0,
    duplicates integer NOT NULL DEFAULT 0,
    rejected integer NOT NULL DEFAULT 0,
    rejected_rows jsonb NOT NULL DEFAULT '[]'::jsonb,
    finished_at timestamptz,
    CONSTRAINT ck_imports_kind CHECK (kind IN ('patients', 'medicines')),
    CONSTRAINT ck_imports_status CHECK (status IN ('QUEUED', 'RUNNING', 'FINISHED')),
    CONSTRAINT ck_imports_processed CHECK (processed <= total_rows)
);
-- The same file of the same kind is one import: uploading it again points to it.
CREATE UNIQUE INDEX uq_imports_kind_sha256 ON imports (kind, sha256);
CREATE INDEX ix_imports_created ON imports (created_at, id);
"""


def upgrade():
    op.execute(UPGRADE)


def downgrade():
    op.execute("DROP TABLE imports")
