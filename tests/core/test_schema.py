"""The models declare what the migrations create: Alembic's autogenerate, run against the
migrated database the way `flask db migrate` runs it, finds nothing to add, drop or change,
so a new migration holds only what its author changed."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from qure.core.db import EXPRESSION_INDEXES, comparable
from qure.extensions import db


def _changes(**opts) -> list:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, **opts})
        return compare_metadata(context, db.metadata)


def test_autogenerate_finds_nothing_to_change(app):
    assert _changes(include_object=comparable) == []


def test_only_the_expression_indexes_are_left_out_of_the_comparison(app):
    """Without the filter Alembic would drop and re-create each index on an expression in
    every migration; nothing else is left out."""
    unfiltered = _changes()
    names = {change[1].name for change in unfiltered}
    assert {change[0] for change in unfiltered} == {"add_index", "remove_index"}
    assert names == EXPRESSION_INDEXES
