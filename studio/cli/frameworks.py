"""`studio frameworks`: import, browse and map frameworks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from studio.cli.context import open_container

console = Console(stderr=True)

frameworks_app = typer.Typer(help="Frameworks, controls and mappings.", no_args_is_help=True)


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
    organization: Annotated[str | None, typer.Option(
        help="import into this organization's own frameworks (by name) instead of the shared catalog")] = None,
) -> None:
    """Import an OSCAL catalog (JSON, YAML, XML) or a custom CSV/YAML framework into the
    shared catalog, which every organization sees (or into one organization's own)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with open_container() as c:
        organization_id = None
        if organization is not None:
            from studio.domains.users.repository import OrganizationRepository

            with c.db.read() as conn:
                org = OrganizationRepository(conn).by_name(organization)
            if org is None:
                console.print(f"[red]no organization named {organization!r}[/]")
                raise typer.Exit(2)
            organization_id = org["id"]
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"reading {file.name}", total=None)

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=total)

            try:
                result = c.frameworks.import_file(None, file.name, file.read_bytes(), key=key, name=name,
                                                  version=version, progress=progress,
                                                  organization_id=organization_id)
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
    """List the shared catalog's frameworks with their latest version."""
    with open_container() as c:
        rows = c.frameworks.list(None)
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
    with open_container() as c:
        try:
            info = c.frameworks.show(None, framework)
            items: list[dict[str, Any]]
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
        with open_container() as c:
            result = c.frameworks.import_mappings(None, file.read_bytes())
    except Exception as exc:  # noqa: BLE001
        _fail_with_problems(exc)
        return
    console.print(f"[green]{result['created']} mappings created[/], {result['skipped']} already present")


@frameworks_app.command("derive")
def frameworks_derive(source: str, target: str) -> None:
    """Map controls with the same catalog id in two frameworks as equal (e.g. LOW -> MODERATE)."""
    try:
        with open_container() as c:
            result = c.frameworks.derive_equal(None, source, target)
    except Exception as exc:  # noqa: BLE001
        _fail_with_problems(exc)
        return
    console.print(f"[green]{result['created']} equal mappings derived[/], {result['skipped']} already present")


def register(app: typer.Typer) -> None:
    app.add_typer(frameworks_app, name="frameworks")
