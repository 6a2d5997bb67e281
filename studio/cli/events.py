"""The event commands of the `studio` CLI: `events …`, `audit verify` and `worker`."""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from studio.cli.context import open_container

events_app = typer.Typer(
    help="The event store: consumers, dead letters, replay, live tail.", no_args_is_help=True
)
audit_app = typer.Typer(help="Tamper evidence of the event store.", no_args_is_help=True)
out = Console()


def _parse_time(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO-8601 time: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@events_app.command("status")
def status() -> None:
    """Each consumer's checkpoint, lag and dead letters."""
    with open_container() as c:
        table = Table("consumer", "subscriptions", "checkpoint", "lag", "retrying", "parked", "blocked")
        for row in c.dispatcher.status():
            table.add_row(
                row["consumer"],
                ", ".join(row["subscriptions"]),
                str(row["checkpoint"]),
                str(row["lag"]),
                str(row["retrying"]),
                str(row["parked"]),
                str(row["blocked"]),
            )
        out.print(table)


@events_app.command("parked")
def parked(
    include_retrying: Annotated[
        bool, typer.Option("--retrying", help="also list events still being retried")
    ] = False,
) -> None:
    """Parked events (dead letters) and those blocked behind them in the same stream."""
    from studio.events.dispatcher import BLOCKED, PARKED_STATUS, RETRYING, dead_letters

    with open_container() as c:
        statuses = (PARKED_STATUS, BLOCKED, RETRYING) if include_retrying else (PARKED_STATUS, BLOCKED)
        with c.db.read() as conn:
            rows = dead_letters(conn, statuses=statuses)
        if not rows:
            out.print("no parked events")
            return
        table = Table(
            "event id", "position", "consumer", "type", "stream", "status", "attempts", "last error"
        )
        for r in rows:
            table.add_row(
                str(r["event_id"]),
                str(r["position"]),
                r["consumer"],
                r["event_type"],
                r["stream"],
                r["status"],
                str(r["attempts"]),
                (r["last_error"] or "")[:80],
            )
        out.print(table)


@events_app.command("retry")
def retry(
    event_id: Annotated[str | None, typer.Argument(help="the parked event's id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="retry every parked event")] = False,
    consumer: Annotated[str | None, typer.Option(help="only for this consumer")] = None,
) -> None:
    """Give parked events a fresh attempt budget; the dispatcher picks them up in stream order."""
    if (event_id is None) == (not all_):
        raise typer.BadParameter("give an event id or --all (not both)")
    parsed = None
    if event_id is not None:
        try:
            parsed = uuid.UUID(event_id)
        except ValueError as exc:
            raise typer.BadParameter(f"not an event id: {event_id!r}") from exc
    with open_container() as c:
        n = c.dispatcher.retry_parked(event_id=parsed, consumer=consumer)
        if n == 0:
            out.print("[yellow]no parked event matched[/]")
            raise typer.Exit(1)
        c.dispatcher.run_once()
        out.print(f"[green]{n} parked event(s) queued for retry[/]")


@events_app.command("replay")
def replay(
    consumer: Annotated[str, typer.Argument(help="consumer name (see `studio events status`)")],
    from_position: Annotated[
        int | None,
        typer.Option("--from", min=0,
                     help="re-apply positions >= this; 0 (or 1) resets and rebuilds everything"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="replay events at or after this ISO-8601 time")
    ] = None,
) -> None:
    """Rebuild a projection from position 0 (default), a position or a time."""
    from studio.events.dispatcher import ReplayRefused, UnknownConsumer

    if from_position is not None and since is not None:
        raise typer.BadParameter("--from and --since exclude each other")
    moment = _parse_time(since) if since else None
    with open_container() as c:
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=out) as progress:
            task = progress.add_task(f"replay {consumer}", total=None)

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            try:
                total = c.dispatcher.replay(
                    consumer, from_position=from_position, since=moment, progress=report
                )
            except UnknownConsumer as exc:
                out.print(
                    f"[red]unknown consumer {consumer!r}; known: {', '.join(c.dispatcher.consumers)}[/]"
                )
                raise typer.Exit(2) from exc
            except ReplayRefused as exc:
                out.print(f"[red]{exc}[/]")
                raise typer.Exit(2) from exc
        out.print(f"[green]replayed {total} position(s) through {consumer}[/]")


@events_app.command("tail")
def tail(
    types: Annotated[
        list[str] | None, typer.Option("--type", help="exact type or 'prefix.*'; repeatable")
    ] = None,
    last: Annotated[int, typer.Option(help="start with the last N events")] = 10,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="keep printing new events")
    ] = True,
    interval: Annotated[float, typer.Option(help="poll interval in seconds")] = 0.5,
) -> None:
    """Print events as they are committed (Ctrl-C to stop)."""
    with open_container() as c:
        with c.db.read() as conn:
            after = max(c.store.head_position(conn) - last, 0)
        try:
            while True:
                with c.db.read() as conn:
                    head = c.store.head_position(conn)  # read first: nothing below it can appear later
                    batch = c.store.read(conn, after=after, limit=500, types=types)
                for ev in batch:
                    out.print(
                        f"[dim]{ev.position:>8}[/] {ev.timestamp:%H:%M:%S.%f}"[:-3]
                        + f" [bold cyan]{ev.type:<24}[/] {ev.stream} [dim]actor={ev.metadata.get('actor', '-')}"
                        f" id={ev.id}[/]",
                        highlight=False,
                        soft_wrap=True,
                    )
                after = batch[-1].position if batch else max(after, head)
                if not follow:
                    return
                if not batch:
                    time.sleep(interval)
        except KeyboardInterrupt:
            return


@audit_app.command("verify")
def audit_verify(
    project: Annotated[str | None, typer.Option(help="only this project's stream")] = None,
) -> None:
    """Recompute the hash chains; exit 1 and name the first bad event of each broken stream."""
    from studio.events.audit import verify

    stream = None
    if project is not None:
        try:
            stream = f"project:{uuid.UUID(project)}"
        except ValueError as exc:
            raise typer.BadParameter(f"not a project id: {project!r}") from exc
    with open_container() as c:
        with c.db.read() as conn:
            report = verify(conn, stream=stream)
        if report.ok:
            out.print(
                f"[green]OK[/]: {report.events} event(s) in {report.streams} stream(s), every chain intact"
            )
            return
        for b in report.breaks:
            where = (
                f"position {b.position} (event {b.event_id}, version {b.stream_version})"
                if b.position
                else f"version {b.stream_version}"
            )
            out.print(
                f"[red]BROKEN[/] {b.stream}: first bad event at {where}: {b.reason}",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(1)


def worker() -> None:
    """Run the event consumers (and, with STUDIO_NATS_URL, wake on JetStream) until stopped."""
    from studio.events.transport_nats import NatsWorker

    with open_container() as c:
        s = c.settings
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        c.dispatcher.ensure_checkpoints()
        c.dispatcher.start()
        nats_worker = None
        if s.nats_url:
            nats_worker = NatsWorker(c.dispatcher, s.nats_url, s.nats_stream, s.nats_subject_prefix)
            nats_worker.start()
        Console(stderr=True).print(
            f"studio worker: {len(c.dispatcher.consumers)} consumer(s), "
            f"{'NATS ' + s.nats_url if s.nats_url else 'polling the store'}"
        )
        stop.wait()
        if nats_worker is not None:
            nats_worker.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
    app.add_typer(audit_app, name="audit")
    app.command("worker")(worker)
