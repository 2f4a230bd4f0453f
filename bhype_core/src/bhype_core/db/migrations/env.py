"""Alembic's environment for every bHype branch: the caller supplies the open connection."""

from __future__ import annotations

from alembic import context

from bhype_core.db.migrate import VERSION_TABLE

config = context.config

if context.is_offline_mode():
    raise RuntimeError("bHype does not render migrations as SQL; run `bhype db upgrade`")

connection = config.attributes.get("connection")
if connection is None:
    # There is no alembic.ini: bhype_core.db.migrate builds the config and opens the connection.
    raise RuntimeError("run migrations with `bhype db upgrade` (bhype_core.db.migrate), not the alembic CLI")

sqlite = connection.dialect.name == "sqlite"
context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things: autogenerate must write batch (copy-and-move) operations.
    render_as_batch=sqlite,
    # bHype's SQLite engine begins real transactions, so DDL there is transactional after all.
    transactional_ddl=True if sqlite else None,
    compare_type=True,
    on_version_apply=config.attributes.get("on_version_apply"),
)

with context.begin_transaction():
    context.run_migrations()
