"""Request and response bodies of the frameworks domain."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict, StringConstraints

from studio.validation import VISIBLE, Input, Name, Patch

Note = Annotated[str, StringConstraints(max_length=2000)]
# A framework named by its id, its key or its name (spelled as a key: "NIST SP 800-53").
FrameworkRef = Annotated[
    str, StringConstraints(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._()\-]*$")
]


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


class MappingUpdate(Patch):
    relation: Relation | None = None
    strength: int | None = Field(default=None, ge=0, le=10)
    origin: Origin | None = None
    note: Note | None = None


class DeriveRequest(Input):
    source: FrameworkRef
    target: FrameworkRef


# -- the custom framework format, spelled in JSON (what an upload's `file` part may hold) ---
ControlKey = Annotated[str, StringConstraints(max_length=120, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")]
Title = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=VISIBLE)]
LongText = Annotated[str, StringConstraints(max_length=20_000)]


class ChildControlDoc(Input):
    ref: ControlKey = Field(description="Unique in the file")
    title: Title
    label: Annotated[str, StringConstraints(max_length=120)] = ""
    statement: LongText = ""
    guidance: LongText = ""
    weight: Annotated[float, Strict(), Field(ge=0, le=1000)] = 1.0


class ControlDoc(ChildControlDoc):
    controls: list[ChildControlDoc] = Field(default_factory=list, max_length=500,
                                            description="Controls under this one")


class FrameworkMeta(Input):
    name: Name
    version: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=VISIBLE)] = "1"
    description: LongText = ""


class FrameworkDocument(Input):
    """A custom framework as JSON: the same structure as the custom YAML format."""

    framework: FrameworkMeta
    controls: list[ControlDoc] = Field(min_length=1, max_length=5000)


class MappingRow(Input):
    """One mapping of an imported file: the CSV's columns, as JSON."""

    source_framework: FrameworkRef
    source: Annotated[str, StringConstraints(min_length=1, max_length=120)] = Field(description="ref or label")
    target_framework: FrameworkRef
    target: Annotated[str, StringConstraints(min_length=1, max_length=120)] = Field(description="ref or label")
    relation: Relation
    strength: Annotated[int, Strict(), Field(ge=0, le=10)]
    origin: Origin = Origin.IMPORTED
    note: Note = ""


class MappingFile(Input):
    """An imported mapping file spelled in JSON."""

    mappings: list[MappingRow] = Field(max_length=100_000)
