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


# The words of a normalised name with their positions (0 = first word). The trigger and
# the bulk loader both use it, so the two can never split names differently.
NAME_TERMS_FUNCTION = r"""
CREATE FUNCTION qure_name_terms(name text) RETURNS TABLE (term text, pos smallint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT DISTINCT ON (w) w, (o - 1)::smallint
    FROM unnest(regexp_split_to_array(name, '\s+')) WITH ORDINALITY AS t(w, o)
    WHERE w <> ''
    ORDER BY w, o
$$
"""

# Keeps patient_search_terms equal to the words of every live patient's name. The bulk
# loader sets qure.bulk_load for its transaction and fills the tables in one pass instead.
SYNC_TERMS_FUNCTION = """
CREATE FUNCTION qure_sync_patient_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('qure.bulk_load', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.name_search IS NOT DISTINCT FROM OLD.name_search
           AND (NEW.archived_at IS NULL) = (OLD.archived_at IS NULL) THEN
            RETURN NULL;
        END IF;
        DELETE FROM patient_search_terms WHERE patient_id = NEW.id;
    END IF;
    IF NEW.archived_at IS NULL THEN
        INSERT INTO patient_search_terms (term, patient_id, pos)
        SELECT t.term, NEW.id, t.pos FROM qure_name_terms(NEW.name_search) AS t;
        INSERT INTO search_words (word)
        SELECT t.term FROM qure_name_terms(NEW.name_search) AS t
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
"""


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
            # QC-000123 up to six digits, QC-1000000 beyond (never truncated).
            server_default=sa.text(
                "'QC-' || to_char(nextval('patient_mrn_seq'), 'FM999999000000')"
            ),
            nullable=False,
        ),
        sa.Column("full_name", sa.String(length=120), nullable=False),
        # Text: normalising can lengthen a name ("ß" becomes "ss").
        sa.Column("name_search", sa.Text(), nullable=False),
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

    # Name search that stays fast on common names: a byte-ordered index for "the name
    # starts with", and one row per word of each live patient's name for "a word starts
    # with", both read in order, so a page or a capped count touches a few hundred entries.
    op.execute(
        'CREATE INDEX ix_patients_name_prefix ON patients (name_search COLLATE "C", id) '
        "WHERE archived_at IS NULL"
    )
    op.execute(
        """
        CREATE TABLE patient_search_terms (
            term text COLLATE "C" NOT NULL,
            patient_id bigint NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
            pos smallint NOT NULL,
            PRIMARY KEY (term, patient_id)
        )
        """
    )
    op.execute("CREATE INDEX ix_patient_terms_patient ON patient_search_terms (patient_id, term)")
    # Every distinct word seen in a name: a fragment inside a word ("arma") is looked up
    # here first (a few thousand rows, not a million), then its patients by word.
    op.execute('CREATE TABLE search_words (word text COLLATE "C" PRIMARY KEY)')
    op.execute("CREATE INDEX ix_search_words_trgm ON search_words USING gin (word gin_trgm_ops)")
    op.execute(NAME_TERMS_FUNCTION)
    op.execute(SYNC_TERMS_FUNCTION)
    op.execute(
        "CREATE TRIGGER patients_search_terms AFTER INSERT OR UPDATE OF name_search, archived_at "
        "ON patients FOR EACH ROW EXECUTE FUNCTION qure_sync_patient_terms()"
    )


def downgrade():
    op.execute("DROP TRIGGER IF EXISTS patients_search_terms ON patients")
    op.execute("DROP TABLE IF EXISTS patient_search_terms")
    op.execute("DROP TABLE IF EXISTS search_words")
    op.execute("DROP FUNCTION IF EXISTS qure_sync_patient_terms()")
    op.execute("DROP FUNCTION IF EXISTS qure_name_terms(text)")
    op.execute("DROP INDEX IF EXISTS ix_patients_name_prefix")
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
