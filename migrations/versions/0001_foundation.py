"""foundation: users, patients, outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-24 04:03:51.971062

"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    # Trigram search over patient names and phones; btree_gist for the slot exclusion
    # constraint of the scheduling issue.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute("CREATE SEQUENCE patient_mrn_seq")
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sa.Text(), nullable=True),
        sa.Column("hash", sa.Text(), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_unchained",
            ["id"],
            unique=False,
            postgresql_where=sa.text("seq IS NULL AND topic = 'audit_logs'"),
        )
        batch_op.create_index(
            "ix_outbox_unshipped",
            ["id"],
            unique=False,
            postgresql_where=sa.text("shipped_at IS NULL"),
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("full_name", sa.String(length=120), nullable=False),
        sa.Column(
            "role",
            sa.Enum("ADMIN", "DOCTOR", "PHARMACIST", "RECEPTION", name="user_role"),
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("registration_number", sa.String(length=60), nullable=True),
        sa.Column("qualification", sa.String(length=120), nullable=True),
        sa.Column(
            "is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "token_version", sa.Integer(), server_default=sa.text("1"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(
            "uq_users_email_lower", [sa.literal_column("lower(email)")], unique=True
        )
        batch_op.create_index(
            "uq_users_username_lower",
            [sa.literal_column("lower(username)")],
            unique=True,
        )

    op.create_table(
        "patients",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "mrn",
            sa.String(length=20),
            server_default=sa.text(
                "'QC-' || lpad(nextval('patient_mrn_seq')::text, 6, '0')"
            ),
            nullable=False,
        ),
        sa.Column("full_name", sa.String(length=120), nullable=False),
        sa.Column("name_search", sa.String(length=120), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column(
            "dob_estimated",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
        ),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("phone_digits", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("blood_group", sa.String(length=3), nullable=True),
        sa.Column(
            "allergies",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "chronic_conditions",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "emergency_contact", postgresql.JSONB(astext_type=sa.Text()), nullable=True
        ),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "blood_group IS NULL OR blood_group IN ('A+','A-','B+','B-','AB+','AB-','O+','O-')",
            name="ck_patients_blood_group",
        ),
        sa.CheckConstraint(
            "phone_digits ~ '^[0-9]{10,15}$'", name="ck_patients_phone_digits"
        ),
        sa.CheckConstraint("sex IN ('F','M','O')", name="ck_patients_sex"),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mrn"),
    )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_patients_name_trgm",
            ["name_search"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"name_search": "gin_trgm_ops"},
        )
        batch_op.create_index(
            "ix_patients_phone_dob", ["phone_digits", "date_of_birth"], unique=False
        )
        batch_op.create_index(
            "ix_patients_phone_trgm",
            ["phone_digits"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"phone_digits": "gin_trgm_ops"},
        )


def downgrade():
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_patients_phone_trgm",
            postgresql_using="gin",
            postgresql_ops={"phone_digits": "gin_trgm_ops"},
        )
        batch_op.drop_index("ix_patients_phone_dob")
        batch_op.drop_index(
            "ix_patients_name_trgm",
            postgresql_using="gin",
            postgresql_ops={"name_search": "gin_trgm_ops"},
        )

    op.drop_table("patients")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index("uq_users_username_lower")
        batch_op.drop_index("uq_users_email_lower")

    op.drop_table("users")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_unshipped", postgresql_where=sa.text("shipped_at IS NULL")
        )
        batch_op.drop_index(
            "ix_outbox_unchained",
            postgresql_where=sa.text("seq IS NULL AND topic = 'audit_logs'"),
        )

    op.drop_table("outbox")
    op.execute("DROP TYPE IF EXISTS user_role")
    op.execute("DROP SEQUENCE IF EXISTS patient_mrn_seq")
