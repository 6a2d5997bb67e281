"""Every route × every role × own / unassigned / foreign project: no unexpected 2xx.

The routes are read from the app itself, so a new endpoint fails this test until its
authorization is written down in SPECS below. Expectations come from the permission
table (studio.permissions) and the membership rules: a project the caller may not see
answers 404, a visible one the caller may not act on answers 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from studio.db.engine import utcnow
from studio.domains.evidence.schemas import EvidenceCreate
from studio.domains.projects.schemas import MemberAdd, ProjectCreate
from studio.domains.users.repository import load_principal
from studio.domains.users.service import create_user
from studio.permissions import ProjectRole, Role, allowed
from studio.principal import AuthInfo
from tests.conftest import TEST_PASSWORD, World

ROLES = (
    "super_admin",
    "admin",
    "manager",
    "auditor",
    "customer",
    "viewer",
    "outsider",
    "anonymous",
)
MEMBER_ROLES = ("manager", "auditor", "customer", "viewer")
OK = 200  # any 2xx


def real_role(role: str) -> str:
    return "admin" if role == "outsider" else role


def project_role(role: str, target: str) -> str | None:
    """The caller's effective role in a project of kind `target`, None if they cannot see it.

    A: org one, every member role is a member; B: org one, none of them is; C: org two.
    """
    if role == "super_admin":
        return "super_admin"
    if target == "C":
        return "admin" if role == "outsider" else None
    if role == "admin":
        return "admin"
    if target == "A" and role in MEMBER_ROLES:
        return role
    return None


def in_project(action: str) -> Callable[[str, str], int]:
    def expect(role: str, target: str) -> int:
        if role == "anonymous":
            return 401
        effective = project_role(role, target)
        if effective is None:
            return 404
        return OK if allowed(effective, action) else 403

    return expect


def in_org(action: str) -> Callable[[str, str], int]:
    def expect(role: str, target: str) -> int:
        if role == "anonymous":
            return 401
        return OK if allowed(real_role(role), action) else 403

    return expect


def on_user(action: str) -> Callable[[str, str], int]:
    """Target A: a user of org one; C: a user of org two."""

    def expect(role: str, target: str) -> int:
        if role == "anonymous":
            return 401
        if not allowed(real_role(role), action):
            return 403
        same_org = (target == "C") == (role == "outsider")
        return OK if same_org or role == "super_admin" else 404

    return expect


def any_caller(role: str, target: str) -> int:
    return 401 if role == "anonymous" else OK


def public(role: str, target: str) -> int:
    return OK


def own_token(role: str, target: str) -> int:
    """Target A: the caller's own API token; C: somebody else's."""
    if role == "anonymous":
        return 401
    return OK if target == "A" else 404


def web_page(role: str, target: str) -> int:
    """Web pages authenticate by session cookie only: a bearer token opens none of them
    (303 to the login page). Their per-role behaviour is tested in tests/test_web.py."""
    return 303


def events_in_org(role: str, target: str) -> int:
    """Target A: an event of org one; C: an event of org two."""
    if role == "anonymous":
        return 401
    if not allowed(real_role(role), "events.read"):
        return 403
    same_org = (target == "C") == (role == "outsider")
    return OK if same_org or role == "super_admin" else 404


def on_catalog(action: str) -> Callable[[str, str], int]:
    """Frameworks and mappings have an owner. Target S: the shared catalog's; A: organization
    one's own; C: organization two's own. Every role reads the shared catalog and its own
    organization's; another organization's is not found; only super_admin changes the shared
    catalog, and an organization's admins (and super_admin of that organization) its own."""

    def expect(role: str, target: str) -> int:
        if role == "anonymous":
            return 401
        if not allowed(real_role(role), action):
            return 403
        own = "C" if role == "outsider" else "A"
        if target not in ("S", own):
            return 404
        if action == "frameworks.manage" and target == "S" and role != "super_admin":
            return 403
        return OK

    return expect


def uploads(action: str) -> Callable[[str, str], int]:
    """Adding a file needs the right to edit that evidence (it was uploaded by another user)."""
    return in_project(action)


@dataclass
class Spec:
    expect: Callable[[str, str], int]
    path: Callable[[Any, str, str], dict[str, Any]] = lambda ctx, target, role: {}
    body: Callable[[Any, str, str], Any] = lambda ctx, target, role: None
    targets: tuple[str, ...] = ("A", "B", "C")
    mutates: bool = True
    # For non-JSON requests: keyword arguments for the test client (content, files, data).
    send: Callable[[Any, str, str], dict[str, Any]] | None = None


def project(ctx, target, role):
    return {"project_id": ctx.target(target).project_id}


def pending(ctx, target, role):
    return {"evidence_id": ctx.target(target).pending}


def in_review(ctx, target, role):
    return {"evidence_id": ctx.target(target).in_review}


def a_file(ctx, target, role):
    return {"file_id": ctx.target(target).file_id}


def an_event(ctx, target, role):
    return {"event_id": ctx.target(target).event_id}


WEB_GET = {"/", "/login", "/dashboard", "/projects/{project_id}", "/evidence/{evidence_id}", "/users",
           "/projects/new", "/projects/{project_id}/settings", "/projects/{project_id}/archive",
           "/projects/{project_id}/members", "/projects/{project_id}/members/{user_id}/remove",
           "/projects/{project_id}/controls", "/projects/{project_id}/controls/pick",
           "/projects/{project_id}/evidence/new", "/evidence/{evidence_id}/edit",
           "/evidence/{evidence_id}/controls", "/files/{file_id}/preview", "/reviews"}


def unique_name(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


SPECS: dict[tuple[str, str], Spec] = {
    # operations and documentation: public by design
    ("GET", "/healthz"): Spec(public, targets=("-",), mutates=False),
    ("GET", "/readyz"): Spec(public, targets=("-",), mutates=False),
    ("GET", "/docs"): Spec(public, targets=("-",), mutates=False),
    ("GET", "/openapi.json"): Spec(public, targets=("-",), mutates=False),
    # Prometheus scrapes without credentials; it exposes counts, never data (docs/events.md).
    ("GET", "/metrics"): Spec(public, targets=("-",), mutates=False),
    # auth
    ("POST", "/api/v1/auth/login"): Spec(
        public,
        targets=("-",),
        body=lambda ctx, t, r: {"email": ctx.login_email, "password": TEST_PASSWORD},
    ),
    ("POST", "/api/v1/auth/refresh"): Spec(
        public, targets=("-",), body=lambda ctx, t, r: {"refreshToken": ctx.fresh_refresh_token()}
    ),
    ("POST", "/api/v1/auth/logout"): Spec(any_caller, targets=("-",)),
    ("GET", "/api/v1/tokens"): Spec(any_caller, targets=("-",), mutates=False),
    ("POST", "/api/v1/tokens"): Spec(
        any_caller, targets=("-",), body=lambda ctx, t, r: {"name": "script"}
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): Spec(
        own_token, targets=("A", "C"), path=lambda ctx, t, r: {"token_id": ctx.api_token(t, r)}
    ),
    # users
    ("GET", "/api/v1/me"): Spec(any_caller, targets=("-",), mutates=False),
    ("GET", "/api/v1/organizations/current"): Spec(any_caller, targets=("-",), mutates=False),
    ("GET", "/api/v1/users"): Spec(in_org("users.read"), targets=("-",), mutates=False),
    ("POST", "/api/v1/users"): Spec(
        in_org("users.manage"),
        targets=("-",),
        body=lambda ctx, t, r: {
            "email": f"{uuid.uuid4().hex[:12]}@one.example",
            "name": "New",
            "role": "viewer",
            "password": "a long enough password",
        },
    ),
    ("GET", "/api/v1/users/{user_id}"): Spec(
        on_user("users.read"),
        targets=("A", "C"),
        mutates=False,
        path=lambda ctx, t, r: {"user_id": ctx.target(t).org_user},
    ),
    ("PATCH", "/api/v1/users/{user_id}"): Spec(
        on_user("users.manage"),
        targets=("A", "C"),
        path=lambda ctx, t, r: {"user_id": ctx.target(t).org_user},
        body=lambda ctx, t, r: {"name": "Renamed"},
    ),
    ("DELETE", "/api/v1/users/{user_id}"): Spec(
        on_user("users.manage"),
        targets=("A", "C"),
        path=lambda ctx, t, r: {"user_id": ctx.target(t).org_user},
    ),
    # projects
    ("GET", "/api/v1/projects"): Spec(any_caller, targets=("-",), mutates=False),
    ("POST", "/api/v1/projects"): Spec(
        in_org("projects.create"),
        targets=("-",),
        body=lambda ctx, t, r: {"name": unique_name("Project"), "framework": "SOC 2"},
    ),
    ("GET", "/api/v1/projects/{project_id}"): Spec(
        in_project("project.read"), path=project, mutates=False
    ),
    ("PATCH", "/api/v1/projects/{project_id}"): Spec(
        in_project("project.update"),
        path=project,
        body=lambda ctx, t, r: {"name": unique_name("Renamed")},
    ),
    ("DELETE", "/api/v1/projects/{project_id}"): Spec(in_project("project.delete"), path=project),
    ("GET", "/api/v1/projects/{project_id}/members"): Spec(
        in_project("project.members.read"), path=project, mutates=False
    ),
    ("PUT", "/api/v1/projects/{project_id}/members"): Spec(
        in_project("project.members.manage"),
        path=project,
        body=lambda ctx, t, r: {"userId": str(ctx.target(t).org_user), "role": "viewer"},
    ),
    ("DELETE", "/api/v1/projects/{project_id}/members/{user_id}"): Spec(
        in_project("project.members.manage"),
        path=lambda ctx, t, r: {**project(ctx, t, r), "user_id": ctx.target(t).uploader},
    ),
    # evidence (created by an uploader, never by the caller: "own" rules do not apply)
    ("GET", "/api/v1/projects/{project_id}/evidence"): Spec(
        in_project("evidence.read"), path=project, mutates=False
    ),
    ("POST", "/api/v1/projects/{project_id}/evidence"): Spec(
        in_project("evidence.create"),
        path=project,
        body=lambda ctx, t, r: {"title": "Evidence", "controlId": "AC-2"},
    ),
    ("GET", "/api/v1/evidence/{evidence_id}"): Spec(
        in_project("evidence.read"), path=pending, mutates=False
    ),
    ("PATCH", "/api/v1/evidence/{evidence_id}"): Spec(
        in_project("evidence.update"), path=pending, body=lambda ctx, t, r: {"title": "Edited"}
    ),
    ("DELETE", "/api/v1/evidence/{evidence_id}"): Spec(in_project("evidence.delete"), path=pending),
    ("POST", "/api/v1/evidence/{evidence_id}/submit"): Spec(
        # submitting someone else's evidence needs the right to edit it
        lambda role, t: (
            in_project("evidence.update")(role, t)
            if in_project("evidence.submit")(role, t) == OK
            else in_project("evidence.submit")(role, t)
        ),
        path=pending,
    ),
    ("POST", "/api/v1/evidence/{evidence_id}/review"): Spec(
        in_project("evidence.review"),
        path=in_review,
        body=lambda ctx, t, r: {"decision": "approved", "comment": "fine"},
    ),
    ("GET", "/api/v1/evidence/{evidence_id}/reviews"): Spec(
        in_project("evidence.read"), path=pending, mutates=False
    ),
    # evidence files
    ("POST", "/api/v1/evidence/{evidence_id}/files"): Spec(
        uploads("evidence.update"),
        path=pending,
        send=lambda ctx, t, r: {"files": {"file": ("notes.txt", b"access review notes", "text/plain")}},
    ),
    ("PUT", "/api/v1/evidence/{evidence_id}/files/raw"): Spec(
        uploads("evidence.update"),
        path=pending,
        send=lambda ctx, t, r: {
            "content": b"access review notes",
            "params": {"filename": "notes.txt"},
            "headers": {"Content-Type": "text/plain"},
        },
    ),
    ("GET", "/api/v1/evidence/{evidence_id}/files"): Spec(
        in_project("evidence.read"), path=pending, mutates=False
    ),
    ("GET", "/api/v1/files/{file_id}"): Spec(in_project("evidence.read"), path=a_file, mutates=False),
    ("GET", "/api/v1/files/{file_id}/text"): Spec(
        in_project("evidence.read"), path=a_file, mutates=False
    ),
    ("GET", "/api/v1/files/{file_id}/content"): Spec(
        in_project("evidence.read"), path=a_file, mutates=False
    ),
    # the event store
    ("GET", "/api/v1/events"): Spec(in_org("events.read"), targets=("-",), mutates=False),
    ("GET", "/api/v1/events/{event_id}"): Spec(
        events_in_org, targets=("A", "C"), path=an_event, mutates=False
    ),
}

# frameworks and mappings: the shared catalog plus each organization's own (on_catalog);
# reading is for every role, managing for admins.
SPECS.update({
    ("POST", "/api/v1/frameworks/import"): Spec(
        in_org("frameworks.manage"), targets=("-",),
        send=lambda ctx, t, r: {
            "files": {"file": ("custom.csv", MATRIX_CSV, "text/csv")},
            "data": {"key": f"custom-{uuid.uuid4().hex[:8]}", "name": unique_name("Custom")},
        },
    ),
    ("GET", "/api/v1/frameworks"): Spec(in_org("frameworks.read"), targets=("-",), mutates=False),
    ("GET", "/api/v1/frameworks/{framework}"): Spec(
        on_catalog("frameworks.read"), targets=("S", "A", "C"), mutates=False,
        path=lambda ctx, t, r: {"framework": ctx.catalog_key(t)},
    ),
    ("GET", "/api/v1/frameworks/{framework}/controls"): Spec(
        on_catalog("frameworks.read"), targets=("S", "A", "C"), mutates=False,
        path=lambda ctx, t, r: {"framework": ctx.catalog_key(t)},
    ),
    ("GET", "/api/v1/controls/{control_id}"): Spec(
        on_catalog("frameworks.read"), targets=("S", "A", "C"), mutates=False,
        path=lambda ctx, t, r: {"control_id": ctx.catalog_control(t)},
    ),
    ("GET", "/api/v1/controls/{control_id}/neighbourhood"): Spec(
        on_catalog("frameworks.read"), targets=("S", "A", "C"), mutates=False,
        path=lambda ctx, t, r: {"control_id": ctx.catalog_control(t)},
    ),
    ("GET", "/api/v1/mappings"): Spec(in_org("frameworks.read"), targets=("-",), mutates=False),
    ("POST", "/api/v1/mappings"): Spec(
        in_org("frameworks.manage"), targets=("-",),
        body=lambda ctx, t, r: dict(zip(("sourceId", "targetId"), map(str, ctx.fresh_pair())),
                                    relation="related", strength=5),
    ),
    ("PATCH", "/api/v1/mappings/{mapping_id}"): Spec(
        on_catalog("frameworks.manage"), targets=("S", "A", "C"),
        path=lambda ctx, t, r: {"mapping_id": ctx.fresh_mapping(t)},
        body=lambda ctx, t, r: {"strength": 7},
    ),
    ("DELETE", "/api/v1/mappings/{mapping_id}"): Spec(
        on_catalog("frameworks.manage"), targets=("S", "A", "C"),
        path=lambda ctx, t, r: {"mapping_id": ctx.fresh_mapping(t)},
    ),
    ("POST", "/api/v1/mappings/import"): Spec(
        in_org("frameworks.manage"), targets=("-",),
        send=lambda ctx, t, r: {"files": {"file": ("map.csv", (
            "source_framework,source,target_framework,target,relation,strength\n"
            f"soc-2,AC-{1 + len(ctx.free_pairs) % 30},soc-2-copy,AC-{1 + len(ctx.free_pairs) % 29},related,3\n"
        ).encode(), "text/csv")}},
    ),
    ("POST", "/api/v1/mappings/derive"): Spec(
        in_org("frameworks.manage"), targets=("-",),
        body=lambda ctx, t, r: {"source": "soc-2-copy", "target": "soc-2"},
    ),
    # compliance: per project, through membership
    ("GET", "/api/v1/evidence/{evidence_id}/controls"): Spec(
        in_project("evidence.read"), path=pending, mutates=False
    ),
    ("PUT", "/api/v1/evidence/{evidence_id}/controls"): Spec(
        in_project("evidence.update"), path=pending, body=lambda ctx, t, r: {"controlRefs": ["AC-3"]}
    ),
    ("GET", "/api/v1/evidence/{evidence_id}/coverage"): Spec(
        in_project("evidence.read"), path=pending, mutates=False
    ),
    ("PUT", "/api/v1/projects/{project_id}/framework-version"): Spec(
        in_project("project.framework.move"), path=project,
        body=lambda ctx, t, r: {"frameworkVersionId": ctx.framework["first_version"]},
    ),
    ("PUT", "/api/v1/projects/{project_id}/controls/{ref}/applicability"): Spec(
        in_project("project.controls.manage"),
        path=lambda ctx, t, r: {**project(ctx, t, r), "ref": "AC-4"},
        body=lambda ctx, t, r: {"applicable": False, "reason": "no such system here"},
    ),
    ("GET", "/api/v1/projects/{project_id}/score"): Spec(
        in_project("project.read"), path=project, mutates=False
    ),
    ("GET", "/api/v1/projects/{project_id}/controls"): Spec(
        in_project("project.read"), path=project, mutates=False
    ),
    ("GET", "/api/v1/projects/{project_id}/renewals"): Spec(
        in_project("evidence.read"), path=project, mutates=False
    ),
    ("GET", "/api/v1/projects/{project_id}/mapped-coverage"): Spec(
        in_project("project.read"), path=project, mutates=False
    ),
})

# the AI service
SPECS.update({
    ("GET", "/api/v1/ai/status"): Spec(any_caller, targets=("-",), mutates=False),
    ("GET", "/api/v1/ai/search"): Spec(
        any_caller, targets=("-",), mutates=False,
        send=lambda ctx, t, r: {"params": {"q": "access review"}},
    ),
    ("GET", "/api/v1/ai/suggestions/metrics"): Spec(any_caller, targets=("-",), mutates=False),
    ("GET", "/api/v1/evidence/{evidence_id}/analysis"): Spec(
        in_project("evidence.read"), path=pending, mutates=False
    ),
    ("POST", "/api/v1/evidence/{evidence_id}/quality-override"): Spec(
        in_project("evidence.review"), path=pending,
        body=lambda ctx, t, r: {"score": 40, "reason": "the export covers one quarter only"},
    ),
    # deciding on a suggestion edits the evidence's links: whoever may edit it
    ("POST", "/api/v1/ai/suggestions/{suggestion_id}/decision"): Spec(
        in_project("evidence.update"),
        path=lambda ctx, t, r: {"suggestion_id": ctx.open_suggestion(t)},
        body=lambda ctx, t, r: {"decision": "dismissed"},
    ),
    # framework mappings are installation-wide: admins
    ("POST", "/api/v1/ai/mappings"): Spec(
        in_org("frameworks.manage"), targets=("-",),
        body=lambda ctx, t, r: {"source": "soc-2", "target": "soc-2-copy"},
    ),
    ("POST", "/api/v1/ai/mappings/{mapping_id}/decision"): Spec(
        in_org("frameworks.manage"), targets=("-",),
        path=lambda ctx, t, r: {"mapping_id": ctx.open_mapping_suggestion()},
        body=lambda ctx, t, r: {"decision": "dismissed"},
    ),
})

# The server-rendered pages: cookie sessions only (see web_page).
for _method, _template in [
    *(("GET", t) for t in WEB_GET - {"/", "/login"}),
    ("POST", "/logout"),
    ("POST", "/projects/{project_id}/evidence"),
    ("POST", "/evidence/{evidence_id}/submit"),
    ("POST", "/evidence/{evidence_id}/review"),
    ("POST", "/users"),
    ("POST", "/users/{user_id}/role"),
    ("POST", "/projects"),
    ("POST", "/projects/{project_id}/settings"),
    ("POST", "/projects/{project_id}/archive"),
    ("POST", "/projects/{project_id}/reactivate"),
    ("POST", "/projects/{project_id}/members"),
    ("POST", "/projects/{project_id}/members/{user_id}/remove"),
    ("POST", "/projects/{project_id}/controls/{ref}/applicability"),
    ("POST", "/evidence/{evidence_id}/edit"),
    ("POST", "/evidence/{evidence_id}/controls"),
    ("POST", "/evidence/{evidence_id}/files"),
]:
    SPECS[(_method, _template)] = Spec(
        web_page,
        targets=("A",),
        mutates=False,
        path=lambda ctx, t, r, tpl=_template: {
            k: v
            for k, v in {
                "project_id": ctx.target(t).project_id,
                "evidence_id": ctx.target(t).pending,
                "user_id": ctx.target(t).org_user,
                "file_id": ctx.target(t).file_id,
                "ref": "AC-1",
            }.items()
            if "{" + k + "}" in tpl
        },
    )
# The public entry pages: anyone may see the login form.
SPECS[("GET", "/")] = Spec(web_page, targets=("-",), mutates=False)
SPECS[("GET", "/login")] = Spec(public, targets=("-",), mutates=False)
# A login post without the form's CSRF token is refused whoever sends it.
SPECS[("POST", "/login")] = Spec(lambda r, t: 403, targets=("-",), mutates=False)


# What every signed-in user may do to their own session and tokens.
SELF_SERVICE = {
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
}


MATRIX_CSV = "\n".join(
    ["ref,title,parent,statement"]
    + ["AC,Access control,,"]
    + [f"AC-{i},Control {i},AC,The organization does thing {i}." for i in range(1, 31)]
).encode()


@dataclass
class Target:
    project_id: uuid.UUID
    uploader: uuid.UUID
    org_user: uuid.UUID
    pending: uuid.UUID
    in_review: uuid.UUID
    file_id: uuid.UUID
    event_id: uuid.UUID


@dataclass
class Context:
    container: Any
    world: World
    uploaders: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    login_email: str = "viewer@one.example"
    framework: dict[str, Any] = field(default_factory=dict)
    catalog_controls: dict[str, uuid.UUID] = field(default_factory=dict)
    free_pairs: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)

    def seed_frameworks(self) -> None:
        """Two versions of framework "SOC 2" (so a project can move), and one "SOC 2 copy"
        to derive mappings into; the target projects name "SOC 2"."""
        fw = self.container.frameworks
        first = fw.import_file(None, "soc2.csv", MATRIX_CSV, key="soc-2", name="SOC 2", version="1")
        second = fw.import_file(None, "soc2.csv", MATRIX_CSV + b"\nAC-31,Control 31,AC,New.",
                                key="soc-2", name="SOC 2", version="2")
        fw.import_file(None, "copy.csv", MATRIX_CSV, key="soc-2-copy", name="SOC 2 copy", version="1")
        # Each organization's own framework (the CLI's --organization).
        for kind, org in (("A", self.world.org_id), ("C", self.world.other_org_id)):
            fw.import_file(None, "own.csv", MATRIX_CSV, key=f"own-{kind.lower()}", name=f"Own {kind}",
                           organization_id=org)
        items, _ = fw.controls(None, "soc-2", kind="control", cursor=None, limit=200)
        ids = [uuid.UUID(str(c["id"])) for c in items]
        self.framework = {"first_version": first["versionId"], "second_version": second["versionId"],
                          "control": ids[0]}
        self.catalog_controls = {"S": ids[0]}
        with self.container.db.read() as conn:
            from studio.domains.frameworks.repository import FrameworkRepository

            for kind, org in (("A", self.world.org_id), ("C", self.world.other_org_id)):
                repo = FrameworkRepository(conn, org)
                own = repo.by_key(f"own-{kind.lower()}")
                assert own is not None
                latest = repo.latest_version(own["id"])
                assert latest is not None
                self.catalog_controls[kind] = repo.catalog_controls(latest["id"])[0]["id"]
        self.free_pairs = [(a, b) for a in ids[1:] for b in ids[1:] if a != b]

    def fresh_pair(self) -> tuple[uuid.UUID, uuid.UUID]:
        return self.free_pairs.pop()

    def open_suggestion(self, kind: str) -> uuid.UUID:
        """A fresh open control suggestion on the target's pending evidence (test data)."""
        from studio.ai.models import ai_suggestions

        target = self.target(kind)
        suggestion_id = uuid.uuid4()
        with self.container.db.write(actor="test") as uow:
            uow.conn.execute(ai_suggestions.insert().values(
                id=suggestion_id, evidence_id=target.pending, project_id=target.project_id,
                framework="soc-2", control_ref=f"X-{suggestion_id.hex[:8]}", control_title="Control", rank=1,
                score=0.5, matched=["quarterly access review"], model="test", status="open",
                created_at=utcnow()))
        return suggestion_id

    def open_mapping_suggestion(self) -> uuid.UUID:
        from studio.ai.models import ai_mapping_suggestions

        suggestion_id = uuid.uuid4()
        with self.container.db.write(actor="test") as uow:
            uow.conn.execute(ai_mapping_suggestions.insert().values(
                id=suggestion_id, source_framework="soc-2", source_ref=f"X-{suggestion_id.hex[:8]}",
                target_framework="soc-2-copy", target_ref="AC-5", relation="equal", strength=8,
                score=0.9, origin="suggested", model="test", status="open", created_at=utcnow()))
        return suggestion_id

    def catalog_key(self, kind: str) -> str:
        """S: a shared framework; A, C: organization one's, two's own."""
        return "soc-2" if kind == "S" else f"own-{kind.lower()}"

    def catalog_control(self, kind: str) -> uuid.UUID:
        return self.catalog_controls[kind]

    def fresh_mapping(self, kind: str) -> uuid.UUID:
        """S: a shared mapping (super_admin's); A, C: organization one's, two's own."""
        owner = {"S": self.world["super_admin"], "A": self.world["admin"], "C": self.world.outsider}[kind]
        source, target = self.fresh_pair()
        created = self.container.frameworks.create_mapping(
            owner.principal, source, target, "related", 5, "manual", "")
        assert created["organizationId"] == (None if kind == "S" else str(owner.principal.organization_id))
        return uuid.UUID(str(created["id"]))

    def _user(self, org: uuid.UUID, role: Role) -> Any:
        with self.container.db.write(actor="test") as uow:
            user = create_user(
                uow,
                org_id=org,
                email=f"{uuid.uuid4().hex[:12]}@example.org",
                name="Matrix user",
                role=role,
                password_hash=self.container.passwords.hash(TEST_PASSWORD),
            )
        with self.container.db.read() as conn:
            return load_principal(conn, AuthInfo(user["id"], user["organization_id"], "jwt"))

    def target(self, kind: str) -> Target:
        if kind not in self.targets:
            self.targets[kind] = self._build(kind)
        return self.targets[kind]

    def dirty(self, kind: str) -> None:
        self.targets.pop(kind, None)

    def _build(self, kind: str) -> Target:
        c, w = self.container, self.world
        org = w.other_org_id if kind == "C" else w.org_id
        owner = w.outsider.principal if kind == "C" else w["admin"].principal
        created = c.projects.create(
            owner, ProjectCreate(name=unique_name(f"Matrix {kind}"), framework="SOC 2")
        )
        project_id = uuid.UUID(created["id"])
        if kind == "A":
            for role in MEMBER_ROLES:
                c.projects.add_member(
                    owner, project_id, MemberAdd(userId=w[role].user_id, role=ProjectRole(role))
                )
        uploader = self._user(org, Role.CUSTOMER)
        c.projects.add_member(
            owner, project_id, MemberAdd(userId=uploader.user_id, role=ProjectRole.CUSTOMER)
        )
        first = c.evidence.create(uploader, project_id, EvidenceCreate(title="Pending"))
        second = c.evidence.create(uploader, project_id, EvidenceCreate(title="In review"))
        c.evidence.submit(uploader, uuid.UUID(second["id"]))
        writer = c.documents.new_writer()
        writer.write(b"quarterly access review, signed off by the CISO")
        stored = c.documents.finish(writer)
        recorded = c.documents.record(
            uploader, uuid.UUID(first["id"]), stored, file_name="review.txt",
            declared_type="text/plain", effective_date=None,
        )
        with c.db.read() as conn:
            [event] = c.store.read(conn, stream=f"project:{project_id}", types=["project.created"])
        return Target(
            project_id,
            uploader.user_id,
            self._user(org, Role.VIEWER).user_id,
            uuid.UUID(first["id"]),
            uuid.UUID(second["id"]),
            uuid.UUID(recorded["file"]["id"]),
            event.id,
        )

    def api_token(self, kind: str, role: str) -> uuid.UUID:
        """A: a token of the caller's own; C: a token of somebody else."""
        from studio.domains.auth.schemas import ApiTokenCreate

        if kind == "A" and role != "anonymous":
            owner = self.actor(role)
        else:
            owner = self.world["viewer"] if role == "outsider" else self.world.outsider
        created = self.container.auth.create_api_token(
            owner.principal, ApiTokenCreate(name="matrix")
        )
        return uuid.UUID(str(created["id"]))

    def actor(self, role: str) -> Any:
        return self.world.outsider if role == "outsider" else self.world[role]

    def fresh_refresh_token(self) -> str:
        return self.container.auth.login(self.login_email, TEST_PASSWORD)["refreshToken"]


def api_routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    # FastAPI keeps included routers lazily; this walks them down to the routes.
    for route in iter_route_contexts(app.api.routes):
        if isinstance(route.original_route, Mount):  # static files of the docs and pages
            assert route.path in ("/static/docs", "/static/web"), (
                f"unexpected mount {route.path}: decide its authorization"
            )
            continue
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def test_every_route_has_an_authorization_decision(app):
    routes = api_routes(app)
    unknown = routes - set(SPECS)
    assert not unknown, f"routes without an authorization decision in SPECS: {sorted(unknown)}"
    stale = set(SPECS) - routes
    assert not stale, f"SPECS names routes the app no longer has: {sorted(stale)}"


def test_matrix(app, client, container, world):
    ctx = Context(container, world)
    ctx.seed_frameworks()
    failures: list[str] = []
    checked = 0
    for (method, template), spec in sorted(SPECS.items()):
        for target in spec.targets:
            for role in ROLES:
                path = template.format(
                    **{k: str(v) for k, v in spec.path(ctx, target, role).items()}
                )
                body = spec.body(ctx, target, role)
                headers = {} if role == "anonymous" else dict(ctx.actor(role).headers)
                if spec.send is None:
                    response = client.request(
                        method, path, headers=headers, json=body, follow_redirects=False
                    )
                else:
                    extra = dict(spec.send(ctx, target, role))
                    headers.update(extra.pop("headers", {}))
                    response = client.request(
                        method, path, headers=headers, follow_redirects=False, **extra
                    )
                expected = spec.expect(role, target)
                got = response.status_code
                checked += 1
                if 200 <= got < 300 and spec.mutates and target != "-":
                    ctx.dirty(target)
                # Auditors review: decisions and quality-score overrides are theirs.
                read_only = role == "viewer" or (
                    role == "auditor" and not template.endswith(("/review", "/quality-override"))
                )
                if (
                    200 <= got < 300
                    and spec.mutates
                    and read_only
                    and (method, template) not in SELF_SERVICE
                ):
                    # Independent of the table above: read-only roles never change anything.
                    failures.append(f"{role} changed something: {method} {template} [{target}]")
                if expected == OK and 200 <= got < 300:
                    continue
                if got != expected:
                    failures.append(
                        f"{role:11} {method:6} {template} [{target}]: "
                        f"expected {expected}, got {got} "
                        f"{response.text[:160]}"
                    )
                elif expected >= 400 and template.startswith("/api/"):
                    code = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}[expected]
                    if response.json()["error"]["code"] != code:
                        failures.append(
                            f"{role} {method} {template} [{target}]: "
                            f"code {response.json()['error']}"
                        )
    assert checked > 400
    assert not failures, "\n".join(failures)
