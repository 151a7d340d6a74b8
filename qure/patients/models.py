"""The patient record."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from qure.extensions import db

SEXES = ("F", "M", "O")
SEX_LABELS = {"F": "Female", "M": "Male", "O": "Other"}  # as printed documents write it
BLOOD_GROUPS = ("A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-")


class Patient(db.Model):
    """A patient. `mrn` comes from a database sequence; `phone` is E.164 (+919876543210,
    see core.phone); `name_search` and `phone_digits` (the phone's digits, country code
    included) are normalised copies kept for the trigram search; age is computed, never
    stored."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mrn: Mapped[str] = mapped_column(
        String(20),
        nullable=False,
        unique=True,
        # QC-000123 up to six digits, QC-1000000 beyond (never truncated).
        server_default=text("'QC-' || to_char(nextval('patient_mrn_seq'), 'FM999999000000')"),
    )
    full_name: Mapped[str] = mapped_column(String(120), nullable=False)
    # Text: normalising can lengthen a name ("ß" becomes "ss", "ﬁ" becomes "fi").
    name_search: Mapped[str] = mapped_column(Text, nullable=False)
    date_of_birth: Mapped[date] = mapped_column(Date, nullable=False)
    dob_estimated: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    sex: Mapped[str] = mapped_column(String(1), nullable=False)
    phone: Mapped[str] = mapped_column(String(20), nullable=False)
    phone_digits: Mapped[str] = mapped_column(String(16), nullable=False)
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(Text)
    blood_group: Mapped[str | None] = mapped_column(String(3))
    allergies: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'")
    )
    chronic_conditions: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'")
    )
    emergency_contact: Mapped[dict | None] = mapped_column(JSONB)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        onupdate=func.now(),
    )

    __table_args__ = (
        CheckConstraint("sex IN ('F','M','O')", name="ck_patients_sex"),
        CheckConstraint(
            "blood_group IS NULL OR blood_group IN ('A+','A-','B+','B-','AB+','AB-','O+','O-')",
            name="ck_patients_blood_group",
        ),
        CheckConstraint("phone_digits ~ '^[0-9]{10,15}$'", name="ck_patients_phone_digits"),
        Index(
            "ix_patients_name_trgm",
            "name_search",
            postgresql_using="gin",
            postgresql_ops={"name_search": "gin_trgm_ops"},
        ),
        Index(
            "ix_patients_phone_trgm",
            "phone_digits",
            postgresql_using="gin",
            postgresql_ops={"phone_digits": "gin_trgm_ops"},
        ),
        Index("ix_patients_phone_dob", "phone_digits", "date_of_birth"),
        Index("ix_patients_created", "created_at"),  # a day's new patients (daily summary)
        Index(
            "ix_patients_name_prefix",
            text('name_search COLLATE "C"'),
            "id",
            postgresql_where=text("archived_at IS NULL"),
        ),
    )


class PatientSearchTerm(db.Model):
    """One word of a live patient's normalised name (`pos` 0 is the first word). Kept by
    the `patients_search_terms` trigger; read by the name search, never written by the app."""

    __tablename__ = "patient_search_terms"

    term: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True
    )
    pos: Mapped[int] = mapped_column(SmallInteger, nullable=False)

    __table_args__ = (Index("ix_patient_terms_patient", "patient_id", "term"),)


class SearchWord(db.Model):
    """Every distinct word seen in a patient's name (kept by the same trigger; never
    pruned: a word nobody has any more simply finds no patient)."""

    __tablename__ = "search_words"

    word: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)

    __table_args__ = (
        Index(
            "ix_search_words_trgm",
            "word",
            postgresql_using="gin",
            postgresql_ops={"word": "gin_trgm_ops"},
        ),
    )
