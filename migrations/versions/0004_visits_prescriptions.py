"""visits, notes, prescriptions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 07:00:00

"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE visits (
    id serial PRIMARY KEY,
    patient_id bigint NOT NULL REFERENCES patients (id),
    doctor_id integer NOT NULL REFERENCES users (id),
    appointment_id integer REFERENCES appointments (id),
    queue_entry_id integer REFERENCES queue_entries (id),
    status varchar(12) NOT NULL DEFAULT 'IN_PROGRESS',
    started_at timestamptz NOT NULL,
    completed_at timestamptz,
    bp_systolic smallint,
    bp_diastolic smallint,
    temperature_c numeric(4, 1),
    pulse smallint,
    spo2 smallint,
    weight_kg numeric(5, 2),
    height_cm numeric(5, 1),
    respiratory_rate smallint,
    chief_complaint varchar(500),
    symptom_duration varchar(100),
    diagnosis varchar(500),
    icd10_code varchar(8),
    treatment_plan text,
    follow_up_date date,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_visits_status CHECK (status IN ('IN_PROGRESS', 'COMPLETED')),
    CONSTRAINT ck_visits_bp CHECK (bp_systolic > bp_diastolic),
    CONSTRAINT ck_visits_completed CHECK ((status = 'COMPLETED') = (completed_at IS NOT NULL))
);
-- A patient has at most one visit in progress.
CREATE UNIQUE INDEX uq_visits_patient_in_progress ON visits (patient_id)
    WHERE status = 'IN_PROGRESS';
CREATE INDEX ix_visits_patient_started ON visits (patient_id, started_at);
CREATE INDEX ix_visits_doctor_started ON visits (doctor_id, started_at);

CREATE TABLE visit_notes (
    id serial PRIMARY KEY,
    visit_id integer NOT NULL REFERENCES visits (id),
    category varchar(12) NOT NULL,
    text text NOT NULL,
    author_id integer NOT NULL REFERENCES users (id),
    is_addendum boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    CONSTRAINT ck_visit_notes_category CHECK (category IN ('SYMPTOM', 'OBSERVATION',
        'DIAGNOSIS', 'TREATMENT'))
);
CREATE INDEX ix_visit_notes_visit ON visit_notes (visit_id);

CREATE TABLE prescriptions (
    id serial PRIMARY KEY,
    visit_id integer NOT NULL REFERENCES visits (id),
    patient_id bigint NOT NULL REFERENCES patients (id),
    doctor_id integer NOT NULL REFERENCES users (id),
    notes varchar(1000),
    allergy_override_reason varchar(500),
    -- "medicine_id:allergy" of each allergy match overridden with a reason.
    allergy_overrides varchar(200)[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- One prescription per visit.
    CONSTRAINT uq_prescriptions_visit UNIQUE (visit_id)
);
CREATE INDEX ix_prescriptions_patient ON prescriptions (patient_id);

CREATE TABLE prescription_items (
    id serial PRIMARY KEY,
    prescription_id integer NOT NULL REFERENCES prescriptions (id) ON DELETE CASCADE,
    medicine_id integer NOT NULL REFERENCES medicines (id),
    position smallint NOT NULL,
    dose numeric(6, 2) NOT NULL,
    frequency varchar(20) NOT NULL,
    duration_days smallint NOT NULL,
    quantity integer NOT NULL,
    route varchar(40),
    instructions varchar(300),
    CONSTRAINT ck_items_dose CHECK (dose > 0),
    CONSTRAINT ck_items_duration CHECK (duration_days BETWEEN 1 AND 365),
    CONSTRAINT ck_items_quantity CHECK (quantity > 0),
    CONSTRAINT uq_items_position UNIQUE (prescription_id, position)
);
"""


def upgrade():
    op.execute(UPGRADE)


def downgrade():
    op.execute("DROP TABLE prescription_items")
    op.execute("DROP TABLE prescriptions")
    op.execute("DROP TABLE visit_notes")
    op.execute("DROP TABLE visits")
