"""Shared steps of the framework and compliance tests: import files, feed the projection."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from studio.bootstrap import Container
from studio.domains.compliance.projection import ComplianceScoreProjection
from studio.domains.compliance.scoring import SUBSCRIPTIONS

# The public-domain NIST catalogs in shared/data/oscal beside the repository (CI lays a copy
# of shared/ beside its clone), or where development machines keep them.
OSCAL = next(
    (candidate for candidate in (Path(__file__).resolve().parents[2] / "shared" / "data" / "oscal",
                                 Path(__file__).resolve().parents[1] / "shared" / "data" / "oscal")
     if candidate.exists()),
    Path("/work/shared/data/oscal"),
)
MODERATE = OSCAL / "NIST_SP-800-53_rev5_MODERATE-baseline-resolved-profile_catalog-min.json"
LOW = OSCAL / "NIST_SP-800-53_rev5_LOW-baseline-resolved-profile_catalog-min.json"
BASIC_JSON = OSCAL / "basic-catalog.json"
BASIC_YAML = OSCAL / "basic-catalog.yaml"
XML_SUBSET = Path(__file__).parent / "data" / "oscal-subset.xml"


def import_file(c: Container, path: Path, **kwargs: Any) -> dict[str, Any]:
    return c.frameworks.import_file(None, path.name, path.read_bytes(), **kwargs)


class ProjectionDriver:
    """Feeds stored events to the score projection the way the dispatcher will: in position
    order, each event in its own write transaction, remembering the last position handled."""

    def __init__(self, c: Container):
        self.c = c
        self.consumer = ComplianceScoreProjection()
        self.position = 0

    def drain(self) -> int:
        handled = 0
        while True:
            with self.c.db.read() as conn:
                batch = self.c.store.read(conn, after=self.position, limit=500, types=list(SUBSCRIPTIONS))
            if not batch:
                return handled
            for event in batch:
                with self.c.db.write(actor="compliance-score") as uow:
                    self.consumer.handle(uow, event)
                self.position = event.position
                handled += 1

    def replay(self) -> int:
        with self.c.db.write(actor="compliance-score") as uow:
            self.consumer.reset(uow.conn)
        self.position = 0
        return self.drain()


def project_score(c: Container, project_id: uuid.UUID) -> float:
    from sqlalchemy import select

    from studio.domains.projects.models import projects

    with c.db.read() as conn:
        return float(conn.execute(select(projects.c.compliance_score).where(projects.c.id == project_id)).scalar_one())
