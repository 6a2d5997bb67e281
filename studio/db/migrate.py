"""Schema migrations with Alembic, callable from the CLI, the app and the tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from studio.ai import models as _ai  # noqa: F401

# Importing the models registers every table on the shared metadata.
from studio.db.engine import metadata
from studio.documents import models as _documents  # noqa: F401
from studio.domains.auth import models as _auth  # noqa: F401
from studio.domains.compliance import models as _compliance  # noqa: F401
from studio.domains.evidence import models as _evidence  # noqa: F401
from studio.domains.frameworks import models as _frameworks  # noqa: F401
from studio.domains.projects import models as _projects  # noqa: F401
from studio.domains.users import models as _users  # noqa: F401
from studio.events import activity as _activity  # noqa: F401
from studio.events import models as _events  # noqa: F401

# Every table registered on it by the imports above; read by migrations/env.py.
target_metadata = metadata

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (all migrations by default)."""
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to `revision` (for tests of a migration's data rules)."""
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    """Run an Alembic command in one transaction.

    On SQLite, foreign keys are off while migrating (a pragma that only takes effect outside
    a transaction): rebuilding a table other tables reference (Alembic's batch mode) drops
    and re-creates it, and that DROP would otherwise fail or cascade into the referencing
    rows. The references are checked after the migrations committed."""
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                cfg = alembic_config(str(engine.url))
                cfg.attributes["connection"] = conn
                step(cfg, revision)
            if sqlite:
                broken = conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"foreign keys broken by the migration: {broken[:10]}")
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
