"""scheduling and queue: slots, appointments, queue_entries, clinic_settings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 06:10:00

"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('SCHEDULED', 'CHECKED_IN', 'IN_CONSULTATION', 'COMPLETED')"

UPGRADE = f"""
CREATE TABLE slots (
    id serial PRIMARY KEY,
    doctor_id integer NOT NULL REFERENCES users (id),
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    duration_minutes smallint NOT NULL,
    status varchar(10) NOT NULL DEFAULT 'OPEN',
    block_reason varchar(200),
    created_by_id integer REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_slots_status CHECK (status IN ('OPEN', 'BOOKED', 'BLOCKED')),
    CONSTRAINT ck_slots_duration CHECK (duration_minutes IN (15, 30)),
    CONSTRAINT ck_slots_end CHECK (end_at - start_at = duration_minutes * interval '1 minute'),
    CONSTRAINT ck_slots_block_reason CHECK ((status = 'BLOCKED') = (block_reason IS NOT NULL)),
    -- Two slots of one doctor never overlap.
    CONSTRAINT ex_slots_no_overlap EXCLUDE USING gist
        (doctor_id WITH =, tstzrange(start_at, end_at) WITH &&)
);
CREATE INDEX ix_slots_start ON slots (start_at);

CREATE TABLE appointments (
    id serial PRIMARY KEY,
    patient_id bigint NOT NULL REFERENCES patients (id),
    slot_id integer NOT NULL REFERENCES slots (id),
    doctor_id integer NOT NULL REFERENCES users (id),
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    reason varchar(500),
    status varchar(20) NOT NULL DEFAULT 'SCHEDULED',
    created_by_id integer REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    checked_in_at timestamptz,
    cancelled_at timestamptz,
    CONSTRAINT ck_appointments_status CHECK (status IN ('SCHEDULED', 'CHECKED_IN',
        'IN_CONSULTATION', 'COMPLETED', 'CANCELLED', 'NO_SHOW')),
    -- A patient never holds two active appointments at overlapping times.
    CONSTRAINT ex_appointments_patient_overlap EXCLUDE USING gist
        (patient_id WITH =, tstzrange(start_at, end_at) WITH &&) WHERE ({ACTIVE})
);
-- A slot holds at most one active appointment.
CREATE UNIQUE INDEX uq_appointments_active_slot ON appointments (slot_id) WHERE {ACTIVE};
CREATE INDEX ix_appointments_doctor_start ON appointments (doctor_id, start_at);
CREATE INDEX ix_appointments_patient ON appointments (patient_id);

CREATE TABLE queue_entries (
    id serial PRIMARY KEY,
    day date NOT NULL,
    token_number integer NOT NULL,
    doctor_id integer NOT NULL REFERENCES users (id),
    patient_id bigint NOT NULL REFERENCES patients (id),
    appointment_id integer REFERENCES appointments (id),
    kind varchar(12) NOT NULL,
    urgent boolean NOT NULL DEFAULT false,
    urgent_reason varchar(200),
    complaint varchar(500),
    status varchar(12) NOT NULL DEFAULT 'WAITING',
    tier smallint NOT NULL,
    sort_at timestamptz NOT NULL,
    checked_in_at timestamptz NOT NULL,
    called_at timestamptz,
    completed_at timestamptz,
    status_changed_at timestamptz NOT NULL,
    created_by_id integer REFERENCES users (id),
    CONSTRAINT uq_queue_day_token UNIQUE (day, token_number),
    CONSTRAINT uq_queue_appointment UNIQUE (appointment_id),
    CONSTRAINT ck_queue_status CHECK (status IN ('WAITING', 'WITH_DOCTOR', 'SKIPPED',
        'NO_SHOW', 'COMPLETED')),
    CONSTRAINT ck_queue_kind CHECK (kind IN ('APPOINTMENT', 'WALK_IN')),
    CONSTRAINT ck_queue_kind_appt CHECK ((kind = 'APPOINTMENT') = (appointment_id IS NOT NULL)),
    CONSTRAINT ck_queue_urgent CHECK (NOT urgent OR urgent_reason IS NOT NULL),
    CONSTRAINT ck_queue_token_positive CHECK (token_number > 0)
);
-- A patient holds at most one active token a day; a doctor sees one patient at a time.
CREATE UNIQUE INDEX uq_queue_patient_active ON queue_entries (day, patient_id)
    WHERE status IN ('WAITING', 'WITH_DOCTOR', 'SKIPPED');
CREATE UNIQUE INDEX uq_queue_doctor_current ON queue_entries (day, doctor_id)
    WHERE status = 'WITH_DOCTOR';
CREATE INDEX ix_queue_day_doctor ON queue_entries (day, doctor_id, status);

CREATE TABLE clinic_settings (
    key varchar(60) PRIMARY KEY,
    value varchar(500) NOT NULL,
    updated_by_id integer REFERENCES users (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade():
    op.execute(UPGRADE)


def downgrade():
    op.execute("DROP TABLE clinic_settings")
    op.execute("DROP TABLE queue_entries")
    op.execute("DROP TABLE appointments")
    op.execute("DROP TABLE slots")
