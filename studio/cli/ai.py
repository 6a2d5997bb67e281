"""`studio doctor`, `studio search` and `studio ai ...`: the AI service from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from studio.bootstrap import Container
from studio.cli.context import open_container

ai_app = typer.Typer(help="AI service: control vectors and mapping suggestions.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)




def doctor() -> None:
    """Report the installation's health: database, and which embedding model is active."""
    with open_container() as c:
        _doctor(c)


def _doctor(c: Container) -> None:
    ai = c.ai
    table = Table(title="Studio Platform doctor", show_header=False)
    table.add_row("database", f"{c.db.dialect} ({'reachable' if c.db.ping() else 'UNREACHABLE'})")
    try:
        status = ai.status()
    except Exception as exc:  # doctor reports, it does not crash
        table.add_row("ai", f"[red]unavailable: {exc}[/]")
        out.print(table)
        raise typer.Exit(1) from exc
    table.add_row("embedding model", f"{status['active']} ({status['kind']}, {status['dimension']} dims)")
    if status["fallbackReason"]:
        table.add_row("neural model", f"[yellow]not active: {status['fallbackReason']}[/]")
    table.add_row("offline", "yes (HF_HUB_OFFLINE=1)" if status["offline"] else "[red]no[/]")
    table.add_row("vector index", f"{status['index']}, {status['vectors']} vectors")
    table.add_row("frameworks", ", ".join(status["frameworks"])
                  or "none imported (studio frameworks import FILE)")
    from studio.ai.vectors import pgvector_available

    if c.db.dialect == "postgresql":
        table.add_row("pgvector", "available" if pgvector_available(c.db.engine)
                      else "not installed: flat index over a bytea column (docs/ai.md)")
    out.print(table)


def search(
    query: Annotated[str, typer.Argument(help="what to look for, in plain words")],
    as_user: Annotated[str, typer.Option("--as", help="e-mail of the user whose projects to search")],
    kind: Annotated[str, typer.Option(help="evidence or control")] = "evidence",
    limit: Annotated[int, typer.Option(min=1, max=50)] = 10,
) -> None:
    """Search evidence (in the user's visible projects) or controls by meaning."""
    if kind not in ("evidence", "control"):
        err.print("[red]--kind must be evidence or control[/]")
        raise typer.Exit(2)
    if not query.strip():
        err.print("[red]the query is empty[/]")
        raise typer.Exit(2)
    with open_container() as c:
        principal = c.auth.acting_as(as_user, "cli")
        if principal is None:
            err.print(f"[red]no active user {as_user}[/]")
            raise typer.Exit(1)
        hits = c.ai.search(principal, query, kind=kind, limit=limit)
    table = Table(title=f"{kind} matching {query!r}")
    for col in ("score", "ref", "title"):
        table.add_column(col)
    for hit in hits:
        ref = hit.get("controlRef") or hit.get("evidenceId")
        table.add_row(f"{hit['score']:.3f}", str(ref), str(hit["title"]))
    out.print(table)


@ai_app.command("index")
def index(framework: Annotated[str, typer.Argument(help="key of an imported framework")]) -> None:
    """Embed a framework's controls (what the framework.imported consumer does)."""
    from studio.db.migrate import upgrade

    with open_container() as c:
        upgrade(c.db.engine)
        count = c.ai.index_framework(framework)
    if not count:
        err.print(f"[red]no controls for {framework!r}[/]")
        raise typer.Exit(1)
    out.print(f"[green]{count} controls of {framework} embedded[/]")


@ai_app.command("mappings")
def mappings(source: str, target: str) -> None:
    """Propose control pairs between two frameworks for people to accept."""
    with open_container() as c:
        created = c.ai.suggest_mappings(source, target)
    out.print(f"[green]{created} mapping suggestions from {source} to {target}[/]")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
    app.command()(search)
    app.add_typer(ai_app, name="ai")
