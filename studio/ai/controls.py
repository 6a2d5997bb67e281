"""Where control texts come from: the `ControlSource` interface and an OSCAL catalog reader.

The frameworks domain implements `ControlSource` over its own tables at merge time;
until then (and for the evaluation) an OSCAL catalog JSON file serves the same texts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ControlText:
    framework: str  # a stable framework key, e.g. "nist-800-53-rev5-moderate"
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


@runtime_checkable
class ControlSource(Protocol):
    """Read access to imported frameworks' controls, as plain text for embedding."""

    def frameworks(self) -> list[str]:
        """The keys of the frameworks this source knows."""

    def controls(self, framework: str) -> Iterable[ControlText]:
        """Every control (and enhancement) of one framework; empty for an unknown key."""


_PARAM = re.compile(r"\{\{\s*insert:\s*param,\s*([\w.\-]+)\s*\}\}")


def _ref_of(control_id: str) -> str:
    # OSCAL ids are "ac-2" and "ac-2.1"; auditors write AC-2 and AC-2(1).
    base, _, enhancement = control_id.partition(".")
    return base.upper() + (f"({enhancement})" if enhancement else "")


def _prose(parts: list[dict[str, Any]], params: dict[str, str]) -> str:
    out: list[str] = []
    for part in parts:
        if part.get("prose"):
            out.append(_PARAM.sub(lambda m: params.get(m.group(1), "[assigned]"), part["prose"]))
        if part.get("parts"):
            out.append(_prose(part["parts"], params))
    return " ".join(p for p in out if p)


class OscalControlSource:
    """Controls read from OSCAL catalog JSON files (resolved profiles included)."""

    def __init__(self, catalogs: dict[str, Path]):
        self._paths = catalogs
        self._cache: dict[str, list[ControlText]] = {}

    def frameworks(self) -> list[str]:
        return list(self._paths)

    def controls(self, framework: str) -> list[ControlText]:
        if framework not in self._paths:
            return []
        if framework not in self._cache:
            catalog = json.loads(self._paths[framework].read_text(encoding="utf-8"))["catalog"]
            found: list[ControlText] = []
            for group in catalog.get("groups", []):
                self._walk(framework, group.get("controls", []), found)
            self._walk(framework, catalog.get("controls", []), found)
            self._cache[framework] = found
        return self._cache[framework]

    def _walk(self, framework: str, controls: list[dict[str, Any]], found: list[ControlText]) -> None:
        for control in controls:
            params = {p["id"]: p.get("label") or "[assigned]" for p in control.get("params", [])}
            statement = _prose([p for p in control.get("parts", []) if p.get("name") == "statement"],
                               params)
            found.append(ControlText(framework, _ref_of(control["id"]), control.get("title", ""),
                                     statement))
            self._walk(framework, control.get("controls", []), found)
