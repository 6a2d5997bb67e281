"""The scoring rule, once, as pure functions; the projection, the history fold and the full
recompute all call these, so they cannot disagree about what "covered" means.

The rule (docs/frameworks.md says it in plain words):
- a piece of evidence counts for a control on day D when it is approved, linked to the
  control (its primary control or a further link), and has no expiry or expires on D or later;
- a control is *not applicable* when the project marked it so; otherwise *covered* when at
  least one piece of evidence counts for it; *partial* when not covered but mapped to a
  control covered in another project of the organization; *expired* when it has approved
  evidence but all of it has expired; *missing* otherwise;
- the score is 100 × (weight of covered applicable controls) / (weight of applicable
  controls), rounded to two decimals; 0 when nothing is applicable. Partial coverage is shown
  but does not count: an auditor accepts evidence for the control itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

EVIDENCE_PREFIX = "evidence."
LINK_EVENT = "evidence.controls_linked"
APPLICABILITY_EVENT = "project.control_applicability_changed"
VERSION_EVENT = "project.framework_version_changed"
SUBSCRIPTIONS = ("evidence.*", "project.created", "project.deleted", APPLICABILITY_EVENT, VERSION_EVENT)


@dataclass(slots=True)
class Coverage:
    approved: int = 0
    open_ended: int = 0
    max_expiry: dt.date | None = None

    def add(self, expires: dt.date | None) -> None:
        self.approved += 1
        if expires is None:
            self.open_ended += 1
        elif self.max_expiry is None or expires > self.max_expiry:
            self.max_expiry = expires

    def covers(self, on: dt.date) -> bool:
        return self.open_ended > 0 or (self.max_expiry is not None and self.max_expiry >= on)


def control_status(coverage: Coverage | None, on: dt.date, *, applicable: bool, mapped: bool = False) -> str:
    if not applicable:
        return "not_applicable"
    if coverage is not None and coverage.covers(on):
        return "covered"
    if mapped:
        return "partial"
    if coverage is not None and coverage.approved > 0:
        return "expired"
    return "missing"


def score(weights: dict[str, float], coverage: dict[str, Coverage], not_applicable: set[str],
          on: dt.date) -> float:
    total = covered = 0.0
    for ref, weight in weights.items():
        if ref in not_applicable:
            continue
        total += weight
        cov = coverage.get(ref)
        if cov is not None and cov.covers(on):
            covered += weight
    return round(100.0 * covered / total, 2) if total > 0 else 0.0


def parse_date(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


@dataclass(slots=True)
class EvidenceState:
    approved: bool
    expires: dt.date | None
    refs: frozenset[str]


def evidence_state_from(data: dict[str, Any]) -> EvidenceState | None:
    state = data.get("state")
    if not isinstance(state, dict):
        return None
    return EvidenceState(approved=state.get("status") == "approved", expires=parse_date(state.get("expiresAt")),
                         refs=frozenset(state.get("controls") or ()))


@dataclass
class ScoreFold:
    """A project's scoring inputs rebuilt from its events alone (for history and tests)."""

    version_id: str | None = None
    evidence: dict[str, EvidenceState] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)

    def apply(self, type_: str, data: dict[str, Any]) -> None:
        if type_ == "project.deleted":
            self.version_id = None
            self.evidence.clear()
            self.not_applicable.clear()
        elif type_ == "project.created":
            self.version_id = data.get("frameworkVersionId") or self.version_id
        elif type_ == VERSION_EVENT:
            self.version_id = data.get("frameworkVersionId")
        elif type_ == APPLICABILITY_EVENT:
            if data.get("applicable"):
                self.not_applicable.pop(data["controlRef"], None)
            else:
                self.not_applicable[data["controlRef"]] = data.get("reason") or ""
        elif type_ == "evidence.deleted":
            self.evidence.pop(data["evidenceId"], None)
        elif type_.startswith(EVIDENCE_PREFIX) and "evidenceId" in data:
            state = evidence_state_from(data)
            if state is not None:
                self.evidence[data["evidenceId"]] = state

    def coverage(self) -> dict[str, Coverage]:
        out: dict[str, Coverage] = {}
        for ev in self.evidence.values():
            if ev.approved:
                for ref in ev.refs:
                    out.setdefault(ref, Coverage()).add(ev.expires)
        return out
