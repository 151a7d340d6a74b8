"""The scheduling models declare what the migrations create: autogenerate, run against the
migrated database, finds nothing to add or drop on the scheduling tables."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from qure.extensions import db

TABLES = {"slots", "appointments"}


def _table(change) -> str | None:
    if isinstance(change, list):  # column changes come grouped
        return _table(change[0])
    item = change[1]
    table = getattr(item, "table", None)
    if table is not None:
        return table.name
    if isinstance(item, str) or item is None:  # (op, schema, table, ...)
        return change[2]
    return getattr(item, "name", None)


def test_autogenerate_finds_nothing_to_change_on_the_scheduling_tables(app):
    with db.engine.connect() as connection:
        changes = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert [c for c in changes if _table(c) in TABLES] == []


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
