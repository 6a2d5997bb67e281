"""The `studio` command line: the root command, `serve` and `demo`; every command group
lives in a module of this package and is added here the same way (`register(app)`)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from studio.cli import ai, db, events, frameworks, users
from studio.cli.context import open_container

app = typer.Typer(help="Studio Platform: compliance evidence, reviews and scores.", no_args_is_help=True)
console = Console(stderr=True)


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
    with open_container() as c:
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

    with open_container() as c:
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


for group in (db, users, frameworks, events, ai):
    group.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
