"""The `studio` command line."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from studio.cli.events import register as register_event_commands
from studio.settings import Settings

app = typer.Typer(help="Studio Platform: compliance evidence, reviews and scores.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
register_event_commands(app)
frameworks_app = typer.Typer(help="Frameworks, controls and mappings.", no_args_is_help=True)
app.add_typer(frameworks_app, name="frameworks")
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
    from studio.db.migrate import current, upgrade

    with _opened() as c:
        upgrade(c.db.engine, revision)
        console.print(f"[green]database at revision {current(c.db.engine)}[/] ({c.db.dialect})")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from studio.db.migrate import current

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

    from studio.db.migrate import current
    from studio.domains.users.repository import OrganizationRepository
    from studio.domains.users.schemas import UserCreate
    from studio.domains.users.service import create_organization, create_user
    from studio.errors import AppError
    from studio.validation import clean_plain

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
    from studio.db.migrate import upgrade
    from studio.http.serving import UVICORN_OPTIONS

    os.environ["STUDIO_RUN_WORKERS"] = "true" if workers else "false"
    c = _container()
    if migrate:
        upgrade(c.db.engine)
    s = c.settings
    console.print(f"Studio Platform on [bold]http://{host or s.host}:{port or s.port}[/] "
                  f"({c.db.dialect}; API docs at /docs)")
    uvicorn.run(create_app(c), host=host or s.host, port=port or s.port, log_config=None,
                proxy_headers=True, **UVICORN_OPTIONS)


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="start serving afterwards")] = False,
) -> None:
    """Load demo data (idempotent) and print the demo users' credentials."""
    from studio.cli.demo import load_demo
    from studio.db.migrate import upgrade

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


from studio.cli.ai import register as _register_ai  # noqa: E402  (commands need `app` above)

_register_ai(app)

if __name__ == "__main__":  # pragma: no cover
    app()


def _fail_with_problems(exc: Exception) -> None:
    from studio.errors import AppError

    if isinstance(exc, AppError):
        console.print(f"[red]{exc.message}[/]")
        for d in exc.details or []:
            console.print(f"  [yellow]{d.get('location') or d.get('field')}[/]: {d['message']}")
        raise typer.Exit(2) from exc
    raise exc


@frameworks_app.command("import")
def frameworks_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    key: Annotated[str | None, typer.Option(help="framework key; re-imports with the same key add a version")] = None,
    name: Annotated[str | None, typer.Option(help="name (default: the catalog title or file name)")] = None,
    version: Annotated[str | None, typer.Option(help="version label (default: the catalog's)")] = None,
) -> None:
    """Import an OSCAL catalog (JSON, YAML, XML) or a custom CSV/YAML framework."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    c = _container()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"reading {file.name}", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        try:
            result = c.frameworks.import_file(None, file.name, file.read_bytes(), key=key, name=name,
                                              version=version, progress=progress)
        except Exception as exc:  # noqa: BLE001
            bar.stop()
            _fail_with_problems(exc)
            return
    if result["unchanged"]:
        console.print(f"[yellow]{result['name']} {result['version']} is already imported "
                      f"(version #{result['seq']}); nothing changed[/]")
    else:
        console.print(f"[green]imported {result['name']} {result['version']}[/] as version #{result['seq']}: "
                      f"{result['controls']} controls, {result['relatedLinks']} related links")
        if result["previousVersionId"]:
            console.print(f"  added {len(result['added'])}, removed {len(result['removed'])}, "
                          f"changed {len(result['changed'])}")
    typer.echo(result["versionId"])


@frameworks_app.command("list")
def frameworks_list() -> None:
    """List imported frameworks with their latest version."""
    rows = _container().frameworks.list(None)
    table = Table("key", "name", "version", "controls", "versions")
    for r in rows:
        table.add_row(r["key"], r["name"], r["latestVersion"], str(r["controlCount"]), str(r["latestSeq"]))
    Console().print(table)


@frameworks_app.command("show")
def frameworks_show(
    framework: str,
    search: Annotated[str | None, typer.Option("--search", "-q", help="words in the control text")] = None,
    limit: int = 50,
) -> None:
    """Show a framework's versions and its controls (optionally searched)."""
    c = _container()
    try:
        info = c.frameworks.show(None, framework)
        items, _ = c.frameworks.controls(None, framework, search=search, limit=limit)
    except Exception as exc:  # noqa: BLE001
        _fail_with_problems(exc)
        return
    out = Console()
    out.print(f"[bold]{info['name']}[/] ({info['key']})")
    for v in info["versions"]:
        out.print(f"  #{v['seq']} {v['version']} {v['sourceFormat']} {v['controlCount']} controls  {v['id']}")
    table = Table("label", "title", "kind", "weight")
    for item in items:
        table.add_row(item["label"], item["title"], item["kind"], str(item["weight"]))
    out.print(table)


@frameworks_app.command("map")
def frameworks_map(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]) -> None:
    """Import control mappings from CSV."""
    try:
        result = _container().frameworks.import_mappings(None, file.read_bytes())
    except Exception as exc:  # noqa: BLE001
        _fail_with_problems(exc)
        return
    console.print(f"[green]{result['created']} mappings created[/], {result['skipped']} already present")


@frameworks_app.command("derive")
def frameworks_derive(source: str, target: str) -> None:
    """Map controls with the same catalog id in two frameworks as equal (e.g. LOW -> MODERATE)."""
    try:
        result = _container().frameworks.derive_equal(None, source, target)
    except Exception as exc:  # noqa: BLE001
        _fail_with_problems(exc)
        return
    console.print(f"[green]{result['created']} equal mappings derived[/], {result['skipped']} already present")
