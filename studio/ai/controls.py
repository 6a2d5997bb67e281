"""A control as the AI service embeds it. Controls come from the imported frameworks
(`AiRepository.controls`, over the frameworks domain's `FrameworkControlSource`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ControlText:
    framework: str  # the imported framework's key, e.g. "nist-800-53-moderate"
    ref: str  # as auditors write it: "AC-2", "AC-2(1)"
    title: str
    statement: str

    @property
    def item_id(self) -> str:
        return f"control:{self.framework}:{self.ref}"

    @property
    def text(self) -> str:
        """What gets embedded: the title carries most of the meaning, the statement the rest."""
        return f"{self.title}. {self.statement}".strip()
