"""Alembic environment: runs migrations on the connection tlog hands over.

tlog never reads alembic.ini; ``tlog.storage.db.upgrade`` builds the config and
passes an open connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from tlog.storage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by a hand-run `alembic`
    raise RuntimeError("run migrations through `tlog db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
