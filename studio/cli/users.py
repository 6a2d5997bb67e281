"""`studio user`: users created from the command line."""

import getpass
import os
from typing import Annotated

import typer
from rich.console import Console

from studio.cli.context import open_container

console = Console(stderr=True)

user_app = typer.Typer(help="Users.", no_args_is_help=True)


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

    from studio.db.migrate import current
    from studio.domains.users.repository import OrganizationRepository
    from studio.domains.users.schemas import UserCreate
    from studio.domains.users.service import create_organization, create_user
    from studio.errors import AppError
    from studio.validation import Name

    password = password or os.environ.get("STUDIO_PASSWORD") or getpass.getpass("Password: ")
    try:
        body = TypeAdapter(UserCreate).validate_python(
            {"email": email, "name": name, "role": role, "password": password})
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]{'.'.join(map(str, err['loc']))}: {err['msg']}[/]")
        raise typer.Exit(2) from exc
    try:
        # The same rule as every name: 1-255 characters, at least one of them visible.
        organization = TypeAdapter(Name).validate_python(organization)
    except ValidationError as exc:
        console.print("[red]organization: must be 1-255 characters, at least one visible[/]")
        raise typer.Exit(2) from exc
    with open_container() as c:
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


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
