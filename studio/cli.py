"""The `studio` command line."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from studio.cli_events import register as register_event_commands
from studio.settings import Settings

app = typer.Typer(help="Studio Platform: compliance evidence, reviews and scores.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
register_event_commands(app)
console = Console(stderr=True)


def _container():
    from studio.bootstrap import bootstrap
    from studio.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return bootstrap(settings)


@contextmanager
def _opened() -> Iterator[Any]:
    """A container for one command; its connections are closed when the command ends."""
    c = _container()
    try:
        yield c
    finally:
        c.close()


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply schema migrations (all of them by default)."""
    from studio.migrate import current, upgrade

    with _opened() as c:
        upgrade(c.db.engine, revision)
        console.print(f"[green]database at revision {current(c.db.engine)}[/] ({c.db.dialect})")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from studio.migrate import current

    with _opened() as c:
        typer.echo(current(c.db.engine) or "empty")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(prompt=True)],
    name: Annotated[str, typer.Option(prompt=True)],
    role: Annotated[str, typer.Option(help="super_admin, admin, manager, auditor, customer, viewer")] = "admin",
    organization: Annotated[str, typer.Option(help="organization name (created if missing)")] = "Default",
    password: Annotated[str | None, typer.Option(help="read from STUDIO_PASSWORD or a prompt if unset")] = None,
) -> None:
    """Create a user (and their organization if it does not exist yet)."""
    from pydantic import TypeAdapter, ValidationError

    from sqlalchemy.exc import OperationalError, ProgrammingError

    from studio.domains.users.repository import OrganizationRepository
    from studio.domains.users.schemas import UserCreate
    from studio.domains.users.service import create_organization, create_user
    from studio.errors import AppError
    from studio.migrate import current
    from studio.schemas import clean_plain

    password = password or os.environ.get("STUDIO_PASSWORD") or getpass.getpass("Password: ")
    try:
        body = TypeAdapter(UserCreate).validate_python(
            {"email": email, "name": name, "role": role, "password": password})
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]{'.'.join(map(str, err['loc']))}: {err['msg']}[/]")
        raise typer.Exit(2) from exc
    organization = clean_plain(organization)
    if not 1 <= len(organization) <= 255:
        console.print("[red]organization: must be 1-255 visible characters[/]")
        raise typer.Exit(2)
    with _opened() as c:
        password_hash = c.passwords.hash(body.password)
        try:
            with c.db.write(actor="cli") as uow:
                org = OrganizationRepository(uow.conn).by_name(organization) or create_organization(
                    uow, organization)
                row = create_user(uow, org_id=org["id"], email=str(body.email), name=body.name,
                                  role=body.role, password_hash=password_hash)
        except AppError as exc:
            console.print(f"[red]{exc.message}[/]")
            raise typer.Exit(1) from exc
        except (OperationalError, ProgrammingError) as exc:
            if current(c.db.engine) is None:
                console.print("[red]the database has no schema yet: run `studio db upgrade` first[/]")
                raise typer.Exit(1) from exc
            raise
    console.print(f"[green]created {row['role']} {row['email']}[/] ({row['id']}) in {organization}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default STUDIO_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default STUDIO_PORT or 8000")] = None,
    workers: Annotated[bool, typer.Option("--workers/--no-workers", help="run event consumers in this process")] = True,
    migrate: Annotated[bool, typer.Option(help="apply migrations first")] = True,
) -> None:
    """Serve the API, the web UI and (unless --no-workers) the event consumers."""
    import uvicorn

    from studio.app import create_app
    from studio.migrate import upgrade

    os.environ["STUDIO_RUN_WORKERS"] = "true" if workers else "false"
    c = _container()
    if migrate:
        upgrade(c.db.engine)
    s = c.settings
    console.print(f"Studio Platform on [bold]http://{host or s.host}:{port or s.port}[/] "
                  f"({c.db.dialect}; API docs at /docs)")
    uvicorn.run(create_app(c), host=host or s.host, port=port or s.port, log_config=None,
                access_log=False, proxy_headers=True, server_header=False)


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="start serving afterwards")] = False,
) -> None:
    """Load demo data (idempotent) and print the demo users' credentials."""
    from studio.demo import load_demo
    from studio.migrate import upgrade

    with _opened() as c:
        upgrade(c.db.engine)
        credentials, created = load_demo(c)
    table = Table(title="Demo users" + ("" if created else " (already loaded)"))
    for col in ("role", "e-mail", "password"):
        table.add_column(col)
    for role, email, password in credentials:
        table.add_row(role, email, password)
    Console().print(table)
    if serve_after:
        serve(host=None, port=None, workers=True, migrate=False)


if __name__ == "__main__":  # pragma: no cover
    app()
