"""A projection of project streams: per-project activity and evidence counts for the UI.

It is a pure function of the events (no clock, no other table), so a replay from
position 0 rebuilds exactly the live table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import BigInteger, Column, Integer, String, Table, delete, select, update
from sqlalchemy.engine import Connection

from studio.db.engine import UTCDateTime, metadata

if TYPE_CHECKING:
    from studio.db.engine import UnitOfWork
    from studio.events.envelope import StoredEvent

project_activity = Table(
    "project_activity",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("events", Integer, nullable=False),
    Column("evidence_total", Integer, nullable=False),
    Column("evidence_submitted", Integer, nullable=False),
    Column("evidence_approved", Integer, nullable=False),
    Column("evidence_rejected", Integer, nullable=False),
    Column("members", Integer, nullable=False),
    Column("last_event_type", String(100), nullable=False),
    Column("last_event_at", UTCDateTime, nullable=False),
    Column("last_position", BigInteger, nullable=False),
)

# event type -> counter column it moves, and by how much. An upload (evidence.uploaded)
# adds a file revision to an evidence item that evidence.created already counted.
_COUNTERS: dict[str, tuple[str, int]] = {
    "evidence.created": ("evidence_total", 1),
    "evidence.deleted": ("evidence_total", -1),
    "evidence.submitted": ("evidence_submitted", 1),
    "evidence.approved": ("evidence_approved", 1),
    "evidence.rejected": ("evidence_rejected", 1),
    "member.added": ("members", 1),
    "member.removed": ("members", -1),
}


class ProjectActivityProjection:
    """Counts events, evidence by status and members per project."""

    name: ClassVar[str] = "project_activity"
    subscriptions: ClassVar[tuple[str, ...]] = ("project.*", "evidence.*", "member.*")
    side_effects: ClassVar[bool] = False

    def handle(self, uow: UnitOfWork, event: StoredEvent) -> None:
        if not event.stream.startswith("project:"):
            return
        project_id = event.stream.removeprefix("project:")
        conn = uow.conn
        t = project_activity
        row = conn.execute(select(t).where(t.c.project_id == project_id)).first()
        values: dict[str, Any] = {
            "last_event_type": event.type,
            "last_event_at": event.timestamp,
            "last_position": event.position,
        }
        counter = _COUNTERS.get(event.type)
        if row is None:
            base = {
                c: 0
                for c in (
                    "evidence_total",
                    "evidence_submitted",
                    "evidence_approved",
                    "evidence_rejected",
                    "members",
                )
            }
            if counter:
                base[counter[0]] += counter[1]
            conn.execute(t.insert().values(project_id=project_id, events=1, **base, **values))
            return
        values["events"] = t.c.events + 1
        if counter:
            values[counter[0]] = getattr(t.c, counter[0]) + counter[1]
        conn.execute(update(t).where(t.c.project_id == project_id).values(**values))

    def reset(self, conn: Connection) -> None:
        conn.execute(delete(project_activity))
