"""Alembic environment: migrations run on the connection the server (or the CLI) hands over."""

from alembic import context

from neurocortex.store.job_text import outside_models
from neurocortex.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through neurocortex (serve, or POST /api/maintenance/migrate)")

context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, include_name=outside_models
)
with context.begin_transaction():
    context.run_migrations()
