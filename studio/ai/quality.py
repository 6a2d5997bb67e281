"""The evidence quality score: 0–100 from five signals, each explained in one plain sentence.

| signal       | points | what earns them                                                    |
|--------------|-------:|--------------------------------------------------------------------|
| relevance    |     30 | the text's similarity to its linked control (else the best match)  |
| freshness    |     20 | effective date within a year, not expired                          |
| completeness |     20 | enough readable text was extracted (words, letters, language)      |
| specificity  |     20 | dates, named systems/hosts, named people or owners, ticket ids     |
| uniqueness   |     10 | no other evidence in the project has the same text                 |
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

WEIGHTS = {"relevance": 30, "freshness": 20, "completeness": 20, "specificity": 20, "uniqueness": 10}

_DATE = re.compile(
    r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2},? \d{4}|Q[1-4] \d{4})\b",
    re.IGNORECASE)
_SYSTEM = re.compile(
    r"\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|local|internal|corp)\b|\b\d{1,3}(?:\.\d{1,3}){3}\b|"
    r"\b[a-z]+-[a-z0-9]+-?\d*\b|\b(?:AWS|Azure|Okta|Splunk|ServiceNow|Jira|GitHub|Active Directory|"
    r"PostgreSQL|Windows|Linux|Intune|CrowdStrike|Veeam|Tenable|Nessus|Vault|KMS|SIEM|VPN)\b",
    re.IGNORECASE)
_PERSON = re.compile(
    r"\b(?:owner|approved by|reviewed by|signed by|reviewer|closed by|assignee|escorted by)\b|"
    r"\b[A-Z][a-z]+ [A-Z][a-z]+\b|\b[A-Z]\. ?[A-Z][a-z]+\b|[\w.+-]+@[\w-]+\.[\w.]+")
_TICKET = re.compile(r"\b[A-Z][A-Z0-9]{1,9}-\d{2,}\b")
_ENGLISH = frozenset("the and of to in is for are with on by be this all that from as or at".split())
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    points: float
    max_points: int
    sentence: str

    def as_dict(self) -> dict[str, object]:
        return {"signal": self.name, "points": round(self.points, 1), "maxPoints": self.max_points,
                "explanation": self.sentence}


def text_profile(text: str) -> dict[str, float]:
    """Counts the completeness signal (and bad-input detection) relies on."""
    words = _WORD.findall(text)
    letters = sum(len(w) for w in words)
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\n\t")
    english = sum(1 for w in words if w.lower() in _ENGLISH)
    return {
        "chars": len(text), "words": len(words),
        "letter_ratio": letters / max(len(text), 1),
        "printable_ratio": printable / max(len(text), 1),
        "english_ratio": english / max(len(words), 1),
    }


def _relevance(similarity: float | None, control: str | None, floor: float, ceiling: float) -> Signal:
    top = WEIGHTS["relevance"]
    if similarity is None:
        return Signal("relevance", 0, top, "No control could be compared with the text.")
    share = min(max((similarity - floor) / (ceiling - floor), 0.0), 1.0)
    level = "closely" if share >= 0.75 else "partly" if share >= 0.35 else "barely"
    return Signal("relevance", top * share, top,
                  f"The text {level} matches control {control} (similarity {similarity:.2f}).")


def _freshness(effective: dt.date | None, expires: dt.date | None, today: dt.date) -> Signal:
    top = WEIGHTS["freshness"]
    if expires and expires < today:
        return Signal("freshness", 0, top, f"The evidence expired on {expires.isoformat()}.")
    if effective is None:
        return Signal("freshness", top * 0.5, top, "No effective date is recorded, so its age is unknown.")
    if effective > today:
        return Signal("freshness", top * 0.5, top,
                      f"The effective date {effective.isoformat()} is in the future.")
    age = (today - effective).days
    if age <= 365:
        return Signal("freshness", top, top, f"Effective {age} days ago, within the last year.")
    share = max(0.0, 1.0 - (age - 365) / 730)
    return Signal("freshness", top * share, top,
                  f"Effective {age} days ago; evidence older than a year counts for less.")


def _completeness(profile: dict[str, float]) -> Signal:
    top = WEIGHTS["completeness"]
    words = int(profile["words"])
    share = min(words / 60, 1.0)
    if profile["letter_ratio"] < 0.5:
        share *= 0.5
    note = ""
    if words >= 20 and profile["english_ratio"] < 0.03:
        share *= 0.75
        note = " It does not look like English, which the model reads best."
    if words < 15:
        return Signal("completeness", top * share, top,
                      f"Only {words} words of text were extracted: too little to show how the control works.{note}")
    return Signal("completeness", top * share, top, f"{words} words of readable text were extracted.{note}")


def _specificity(text: str) -> Signal:
    top = WEIGHTS["specificity"]
    found = {
        "dates": bool(_DATE.search(text)),
        "named systems": bool(_SYSTEM.search(text)),
        "named people or owners": bool(_PERSON.search(text)),
        "ticket or record ids": bool(_TICKET.search(text)),
    }
    present = [k for k, v in found.items() if v]
    share = min(len(present) / 3, 1.0)
    if not present:
        return Signal("specificity", 0, top, "It names no date, system, owner or record id.")
    missing = [k for k, v in found.items() if not v]
    tail = f"; missing: {', '.join(missing)}" if missing and share < 1 else ""
    return Signal("specificity", top * share, top, f"It names {', '.join(present)}{tail}.")


def _uniqueness(duplicate_of: str | None) -> Signal:
    top = WEIGHTS["uniqueness"]
    if duplicate_of:
        return Signal("uniqueness", 0, top,
                      f"The same text was already submitted as evidence {duplicate_of}.")
    return Signal("uniqueness", top, top, "No other evidence in the project has the same text.")


def score_quality(*, text: str, similarity: float | None, control: str | None,
                  effective: dt.date | None, expires: dt.date | None, duplicate_of: str | None,
                  floor: float, ceiling: float, today: dt.date | None = None) -> tuple[float, list[Signal]]:
    """The score (0–100, one decimal) and the signals that make it up."""
    signals = [
        _relevance(similarity, control, floor, ceiling),
        _freshness(effective, expires, today or dt.datetime.now(dt.UTC).date()),
        _completeness(text_profile(text)),
        _specificity(text),
        _uniqueness(duplicate_of),
    ]
    return round(min(max(sum(s.points for s in signals), 0.0), 100.0), 1), signals
