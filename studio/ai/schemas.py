"""Request bodies of the AI service's endpoints."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

from studio.schemas import Input, Score


class SuggestionDecision(StrEnum):
    ACCEPTED = "accepted"
    DISMISSED = "dismissed"


class DecisionCreate(Input):
    decision: SuggestionDecision


class QualityOverrideCreate(Input):
    score: Score
    reason: Annotated[str, StringConstraints(min_length=1, max_length=5000)]


FrameworkKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\w.\-]+$")]


class MappingRequest(Input):
    source: FrameworkKey
    target: FrameworkKey

