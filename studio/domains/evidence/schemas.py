"""Request and response bodies of the evidence domain."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from studio.validation import Comment, ControlRef, Input, Name, Output, Patch, RichText, Score


class EvidenceStatus(StrEnum):
    PENDING = "pending"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class EvidenceCreate(Input):
    title: Name
    description: RichText = ""
    controlId: ControlRef | None = None  # noqa: N815
    effectiveDate: dt.date | None = None  # noqa: N815
    expiresAt: dt.date | None = Field(default=None, description="Not before effectiveDate")  # noqa: N815

    @model_validator(mode="after")
    def _dates_in_order(self) -> EvidenceCreate:
        if self.effectiveDate and self.expiresAt and self.expiresAt < self.effectiveDate:
            raise ValueError("expiresAt must not be before effectiveDate")
        return self


class EvidenceUpdate(Patch):
    nullable_fields = frozenset({"controlId", "effectiveDate", "expiresAt", "qualityScore"})

    title: Name | None = None
    description: RichText | None = None
    controlId: ControlRef | None = None  # noqa: N815
    effectiveDate: dt.date | None = None  # noqa: N815
    expiresAt: dt.date | None = None  # noqa: N815
    qualityScore: Score | None = None  # noqa: N815


# A character that survives the comment's cleaning (control characters dropped, then trimmed)
# and is no tag bracket, spelled out: regex dialects disagree on what \s matches.
_COMMENT_TEXT = ("[^<>\x00-\x20\x7f-\x9f\u1680\u2000-\u200a\u2028-\u202f\u205f"
                 "\u2066-\u2069\u3000\ufeff]")


class ReviewCreate(Input):
    # The rule below, in the OpenAPI document too: a rejection carries a comment.
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "if": {"properties": {"decision": {"const": "rejected"}}, "required": ["decision"]},
        "then": {"required": ["comment"], "properties": {"comment": {"pattern": _COMMENT_TEXT}}},
    })

    decision: Decision
    comment: Comment = Field(default="", description="Required when rejecting: what to fix")

    @model_validator(mode="after")
    def _reject_needs_reason(self) -> ReviewCreate:
        if self.decision == Decision.REJECTED and not self.comment.strip():
            raise ValueError("a rejection needs a comment that tells the uploader what to fix")
        return self


class EvidenceRead(Output):
    id: uuid.UUID
    organizationId: uuid.UUID  # noqa: N815
    projectId: uuid.UUID  # noqa: N815
    title: str
    description: str
    controlId: str | None = None  # noqa: N815
    status: EvidenceStatus
    qualityScore: float | None = None  # noqa: N815
    effectiveDate: str | None = None  # noqa: N815
    expiresAt: str | None = None  # noqa: N815
    createdBy: uuid.UUID | None = None  # noqa: N815
    createdAt: str  # noqa: N815
    updatedAt: str  # noqa: N815
    version: int


class ReviewRead(Output):
    id: uuid.UUID
    evidenceId: uuid.UUID  # noqa: N815
    projectId: uuid.UUID  # noqa: N815
    reviewerId: uuid.UUID  # noqa: N815
    decision: Decision
    comment: str
    createdAt: str  # noqa: N815
