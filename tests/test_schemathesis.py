"""Property-based contract test of the served OpenAPI document with schemathesis.

schemathesis' engine runs every phase (examples, coverage, fuzzing, stateful) with every
check it has (no 5xx; documented status codes, content types and headers; response bodies
matching their schemas; schema-violating input rejected and schema-valid input accepted;
405 with `Allow` for undeclared methods and `Allow` on OPTIONS matching the document;
authentication not ignored; deleted resources gone, created ones available; ...), in
process against the ASGI app, as the organization's admin, with path parameters that name
existing objects. Generation is deterministic and bounded, so the run is the same every time
and takes about a minute. Any failed check, any error of the engine and any phase that did
not run fails the test, listing every failure. (The examples phase has nothing to send: the
document gives no examples.)

The app is meant to pass on its own: the document states every rule a JSON Schema can state
(studio/http/api.py, docs/api.md). `_valid_case` only keeps schema-valid (positive) cases
within the rules no JSON Schema can state, each documented on its operation.
"""

from __future__ import annotations

import collections
import unicodedata
import uuid
from typing import Any

import pytest
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.openapi import from_asgi

from studio.documents.names import BadFileName, clean_file_name
from studio.documents.routes import FILE_NAME_FORBIDDEN, FILE_NAME_SPACE
from studio.domains.evidence.schemas import EvidenceCreate
from studio.http.api import KEYSET_CURSOR
from tests.conftest import IN_CI, _discover
from tests.frameworks_support import XML_SUBSET, import_file

pytestmark = pytest.mark.slow

PHASES = ["examples", "coverage", "fuzzing", "stateful"]
# Per operation and phase; the coverage phase's cases do not depend on it. 30 takes 30-60 s
# on two cores; 120 (about 90 s) also passes, and is worth a run after changing the API.
MAX_EXAMPLES = 30
SEED = 20260131  # generation is deterministic; the seed only counts if that is switched off


@pytest.fixture
def backend() -> str:
    """One database: the run takes a minute. PostgreSQL, the production database and the
    stricter one (NUL in text, integer ranges), whenever the suite has it (CI always does)."""
    _, problem = _discover("postgres")
    return "postgres" if problem is None or IN_CI else "sqlite"


def _existing_objects(container: Any, world: Any) -> dict[str, str]:
    """Path parameters that name objects which exist, so that operations get past 404 to their
    real work: project A, an evidence item in it, a user (the viewer, so the admin's own
    session survives a deactivation), an imported framework and one of its controls."""
    admin = world["admin"].principal
    evidence = container.evidence.create(admin, world.project_a, EvidenceCreate(title="Contract"))
    framework = import_file(container, XML_SUBSET)["key"]
    controls, _ = container.frameworks.controls(None, framework, kind="control", limit=1)
    return {
        "project_id": str(world.project_a),
        "evidence_id": str(evidence["id"]),
        "user_id": str(world["viewer"].user_id),
        "framework": framework,
        "control_id": str(controls[0]["id"]),
        "ref": controls[0]["ref"],
    }


def _keyset_cursor(operation: Any) -> bool:
    return any(
        p.get("name") == "cursor" and p.get("schema", {}).get("pattern") == KEYSET_CURSOR
        for p in operation.definition.raw.get("parameters", [])
    )


def _valid_case(context: Any, case: Any) -> Any:
    """Keep a positive case within the rules no JSON Schema can state (negative cases still
    send what they were given):

    - a keyset cursor (base64url) names its listing's ordering, and only one the server issued
      for that `sort` and `order` is valid: a schema-valid case must not invent one (cursors
      that name a row or a position are valid whatever their value, and are kept);
    - an evidence's expiresAt must not come before its effectiveDate;
    - a file name stays within 255 characters after NFC normalisation, which lengthens a few
      rare characters;
    - a mapping joins two different controls, and derives from one framework onto another;
    - the refs of an uploaded framework's controls are unique across the whole file, parents
      and children alike (uniqueItems compares whole items within one array);
    - a new password must not be guessable nor contain the user's e-mail or name (described on
      the field): JSON Schema cannot measure a string's strength.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    if isinstance(case.query, dict):
        if "cursor" in case.query and _keyset_cursor(case.operation):
            case.query.pop("cursor")
        if isinstance(case.query.get("filename"), str):
            try:
                clean_file_name(case.query["filename"])
            except BadFileName:
                case.query["filename"] = "evidence.txt"
    body = case.body if isinstance(case.body, dict) else None
    if not body:
        return case
    effective, expires = body.get("effectiveDate"), body.get("expiresAt")
    if isinstance(effective, str) and isinstance(expires, str) and expires < effective:
        body.pop("expiresAt")
    if isinstance(body.get("sourceId"), str) and body["sourceId"] == body.get("targetId"):
        body["targetId"] = str(uuid.UUID(int=uuid.UUID(body["sourceId"]).int ^ 1))
    if isinstance(body.get("target"), str) and body.get("source") == body["target"]:
        body["target"] = body["target"][:119] + ("y" if body["target"].endswith("x") else "x")
    if isinstance(body.get("password"), str):
        body["password"] = "Vq7#xT9!mB2$kL4@wZ"
    document = body.get("file")
    if isinstance(document, dict) and isinstance(document.get("controls"), list):
        seen: set[Any] = set()
        controls = [c for c in document["controls"] if isinstance(c, dict)]
        for control in list(controls):
            children = control.get("controls")
            if isinstance(children, list):
                controls += [c for c in children if isinstance(c, dict)]
        for number, control in enumerate(controls):
            if control.get("ref") in seen and isinstance(control["ref"], str):
                control["ref"] = f"{control['ref'][:50]}_{number}"
            seen.add(control.get("ref"))
    return case


def _run(app: Any, token: str, parameters: dict[str, str]) -> tuple[list[str], dict[str, Any]]:
    """Every phase and check once over the whole document: the failures and errors, described,
    and what ran."""
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "suppress-health-check": ["all"],
        "headers": {"Authorization": f"Bearer {token}"},
        "workers": 1,
        "parameters": parameters,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
                       "mode": "all"},
    })
    project = config.projects.default
    project.checks.update(included_check_names=["all"])
    project.phases.update(phases=PHASES)
    schema = from_asgi("/openapi.json", app, config=config)
    schema.hooks.register_hook_with_name(_valid_case, "map_case")

    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    phases: dict[str, str] = {}
    cases: collections.Counter[str] = collections.Counter()
    checks: collections.Counter[str] = collections.Counter()
    operations = len(list(schema.get_all_operations()))
    ran_for = 0.0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            phase = str(getattr(event, "phase", "fuzzing"))
            cases[phase] += len(event.recorder.cases)
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    checks[node.name] += 1
                    info = node.failure_info
                    if node.status != Status.FAILURE or info is None:
                        continue
                    failure = info.failure
                    key = (node.name, str(failure.operation), failure.title)
                    if key not in seen:
                        seen.add(key)
                        problems.append(
                            f"[{phase}] {node.name}: {failure.operation}: {failure.title}\n"
                            f"{failure.message}\n{info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            problems.append(f"[{event.phase}] error in {event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            problems.append(f"fatal error: {event.exception!r}")
        elif isinstance(event, events.PhaseFinished):
            phases[str(event.phase.name)] = str(event.status)
        elif isinstance(event, events.EngineFinished):
            ran_for = event.running_time
            problems += [f"[run] {f.operation}: {f.title}\n{f.message}" for f in event.failures]
            if str(event.stop_reason) != "completed":
                problems.append(f"the run stopped early: {event.stop_reason}")
    return problems, {"phases": phases, "cases": dict(cases), "checks": dict(checks),
                      "operations": operations, "seconds": round(ran_for, 1)}


def test_api_contract(app, container, world):
    problems, ran = _run(app, world["admin"].token, _existing_objects(container, world))
    print(ran)  # shown with -s, or on failure
    assert not problems, f"{len(problems)} failure(s):\n\n" + "\n\n".join(problems)
    assert ran["operations"] >= 60, ran
    for phase in ("coverage", "fuzzing", "stateful"):
        assert ran["phases"].get(phase) == "success" and ran["cases"].get(phase), (phase, ran)
    # The document gives no examples, so that phase has nothing to send; it must still pass.
    assert ran["phases"].get("examples") in ("success", "skip"), ran
    assert len(ran["checks"]) >= 12, ran  # every check took part


def test_file_name_pattern_lists_every_character_clean_file_name_refuses():
    """The OpenAPI pattern of file names is written out by code point; this Python's Unicode
    database decides what clean_file_name refuses. They must agree."""

    def ranges(points: list[int]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for p in points:
            if out and out[-1][1] == p - 1:
                out[-1] = (out[-1][0], p)
            else:
                out.append((p, p))
        return out

    everything = range(0x110000)
    bidi = {"RLO", "LRO", "RLE", "LRE", "PDF", "RLI", "LRI", "FSI", "PDI"}
    forbidden = [c for c in everything if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp")
                 or unicodedata.bidirectional(chr(c)) in bidi]
    assert [tuple(r) for r in FILE_NAME_FORBIDDEN] == ranges(forbidden)
    space = [c for c in everything if chr(c).isspace()]
    assert [tuple(r) for r in FILE_NAME_SPACE] == ranges(space)
