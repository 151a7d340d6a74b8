"""The scheduling models declare the reminders' partial index as the migration creates it
(the whole schema's comparison with the migrations is tests/core/test_schema.py)."""

from __future__ import annotations

from sqlalchemy import text

from qure.extensions import db


def test_the_reminders_index_is_declared_as_the_migration_creates_it(app):
    indexes = db.metadata.tables["appointments"].indexes
    index = next(i for i in indexes if i.name == "ix_appointments_to_remind")
    declared = str(index.dialect_options["postgresql"]["where"])
    created = db.session.scalar(
        text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_appointments_to_remind'")
    )
    assert [c.name for c in index.columns] == ["start_at"]
    assert "(start_at)" in created
    assert "reminded_at IS NULL" in created and "'SCHEDULED'" in created
    assert declared == "reminded_at IS NULL AND status = 'SCHEDULED'"
