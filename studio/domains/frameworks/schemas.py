"""Request and response bodies of the frameworks domain."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from studio.schemas import Input

Note = Annotated[str, StringConstraints(max_length=2000)]


class Relation(StrEnum):
    EQUAL = "equal"
    SUBSET = "subset"
    SUPERSET = "superset"
    INTERSECTS = "intersects"
    RELATED = "related"


class Origin(StrEnum):
    MANUAL = "manual"
    IMPORTED = "imported"
    SUGGESTED = "suggested"
    DERIVED = "derived"


class MappingCreate(Input):
    sourceId: uuid.UUID  # noqa: N815
    targetId: uuid.UUID  # noqa: N815
    relation: Relation
    strength: int = Field(ge=0, le=10)
    origin: Origin = Origin.MANUAL
    note: Note = ""


class MappingUpdate(Input):
    relation: Relation | None = None
    strength: int | None = Field(default=None, ge=0, le=10)
    origin: Origin | None = None
    note: Note | None = None


class DeriveRequest(Input):
    source: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    target: Annotated[str, StringConstraints(min_length=1, max_length=120)]
