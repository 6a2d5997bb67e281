"""Request bodies of the compliance domain."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from studio.validation import ControlRef, Input

Reason = Annotated[str, StringConstraints(max_length=2000)]
# A character that str.strip keeps, spelled out: regex dialects disagree on what \s matches.
_KEPT_BY_STRIP = "[^\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


class ControlLinks(Input):
    controlRefs: list[ControlRef] = Field(max_length=200)  # noqa: N815


class Applicability(Input):
    # The rule below, in the OpenAPI document too: not applicable needs a reason.
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"properties": {"applicable": {"const": False}}, "required": ["applicable"]},
        "then": {"required": ["reason"], "properties": {"reason": {"pattern": _KEPT_BY_STRIP}}},
    })

    applicable: bool
    reason: Reason = Field(default="", description="Required when not applicable: why")

    @model_validator(mode="after")
    def _not_applicable_needs_reason(self) -> Applicability:
        if not self.applicable and not self.reason.strip():
            raise ValueError("say why the control does not apply")
        return self


class VersionMove(Input):
    frameworkVersionId: uuid.UUID  # noqa: N815
