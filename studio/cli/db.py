"""`studio db`: the database schema."""

from __future__ import annotations

import typer
from rich.console import Console

from studio.cli.context import open_container

console = Console(stderr=True)

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply schema migrations (all of them by default)."""
    from studio.db.migrate import current, upgrade

    with open_container() as c:
        upgrade(c.db.engine, revision)
        console.print(f"[green]database at revision {current(c.db.engine)}[/] ({c.db.dialect})")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from studio.db.migrate import current

    with open_container() as c:
        typer.echo(current(c.db.engine) or "empty")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
