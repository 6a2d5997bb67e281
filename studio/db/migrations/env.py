"""Alembic environment: runs with the connection handed over by studio.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from studio.db.migrate import target_metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from studio.db.engine import make_engine

        url = config.get_main_option("sqlalchemy.url")
        if url is None:
            raise SystemExit("no database URL configured; run `studio db upgrade`")
        engine = make_engine(url)
        with engine.connect() as conn:
            _run(conn)
        engine.dispose()
    else:
        _run(connection)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `studio db upgrade`")
run_migrations_online()
