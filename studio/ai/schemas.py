"""Request bodies of the AI service's endpoints."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

from studio.domains.frameworks.schemas import FrameworkRef
from studio.validation import VISIBLE, Input, Score


class SuggestionDecision(StrEnum):
    ACCEPTED = "accepted"
    DISMISSED = "dismissed"


class DecisionCreate(Input):
    decision: SuggestionDecision


class QualityOverrideCreate(Input):
    score: Score
    reason: Annotated[str, StringConstraints(min_length=1, max_length=5000, pattern=VISIBLE)]


class MappingRequest(Input):
    source: FrameworkRef
    target: FrameworkRef

