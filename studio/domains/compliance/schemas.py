"""Request bodies of the compliance domain."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, StringConstraints

from studio.schemas import ControlRef, Input

Reason = Annotated[str, StringConstraints(max_length=2000)]


class ControlLinks(Input):
    controlRefs: list[ControlRef] = Field(max_length=200)  # noqa: N815


class Applicability(Input):
    applicable: bool
    reason: Reason = ""


class VersionMove(Input):
    frameworkVersionId: uuid.UUID  # noqa: N815
