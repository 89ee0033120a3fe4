"""Alembic's environment: migrations run on the connection :mod:`curator.store.migrate` passes in
(``config.attributes["connection"]``), against curator's tables (:data:`curator.store.models.Base`)."""

from __future__ import annotations

from alembic import context

from curator.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("curator's migrations run through `curator db upgrade` (curator.store.migrate)")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters a table by copying it; batch mode does that for it
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
