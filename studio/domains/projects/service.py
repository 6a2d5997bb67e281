"""Use cases of the projects domain."""

from __future__ import annotations

import builtins
import uuid
from typing import Any

from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from studio.db.engine import Database, UnitOfWork, utcnow
from studio.db.repository import Page
from studio.domains.projects.repository import MemberRepository, ProjectRepository
from studio.domains.projects.schemas import MemberAdd, ProjectCreate, ProjectUpdate
from studio.domains.users.repository import UserRepository
from studio.domains.users.service import require
from studio.errors import AppError, forbidden, not_found
from studio.permissions import ProjectRole, allowed
from studio.principal import Principal
from studio.records import record

PROJECT_FIELDS = (
    "id", "organization_id", "name", "description", "framework", "status", "compliance_score",
    "created_by", "created_at", "updated_at", "version", "framework_version_id",
)  # fmt: skip
MEMBER_FIELDS = ("project_id", "user_id", "role", "added_at", "email", "name")


def project_wire(row: RowMapping, role: str | None) -> dict[str, Any]:
    return {**record(row, PROJECT_FIELDS), "myRole": role}


def stream_of(project_id: uuid.UUID) -> str:
    return f"project:{project_id}"


def visible_project(conn: Connection, principal: Principal, project_id: uuid.UUID,
                    action: str) -> tuple[RowMapping, str]:
    """Load a project the caller may see and check `action` against their role in it.

    Invisible projects are 404 (existence does not leak); visible ones the caller may not
    act on are 403.
    """
    found = ProjectRepository(conn).get_visible(principal, project_id)
    if found is None:
        raise not_found("project")
    row, role = found
    if role is None:
        raise not_found("project")
    if not allowed(role, action):
        raise forbidden(action)
    return row, role


class ProjectService:
    def __init__(self, db: Database):
        self.db = db

    def list(self, principal: Principal, *, cursor: str | None, limit: int, sort: str, desc: bool,
             status: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """List the projects the caller may see."""
        with self.db.read() as conn:
            repo = ProjectRepository(conn)
            page: Page = repo.find_all(where=repo.scope(principal),
                                       equal={"status": status} if status else None,
                                       cursor=cursor, limit=limit, sort=sort, desc=desc)
            roles = repo.roles_for(principal, [r["id"] for r in page.items])
            items = [project_wire(r, principal.project_role(roles.get(r["id"]))) for r in page.items]
            return items, page.next_cursor

    def get(self, principal: Principal, project_id: uuid.UUID) -> dict[str, Any]:
        with self.db.read() as conn:
            row, role = visible_project(conn, principal, project_id, "project.read")
            return project_wire(row, role)

    def create(self, principal: Principal, body: ProjectCreate, *, request_id: str | None = None) -> dict[str, Any]:
        """Create a project; its creator becomes its manager unless they are an admin."""
        require(principal, "projects.create")
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row = create_project(uow, principal, body)
            role = principal.project_role(None if principal.org_wide else ProjectRole.MANAGER.value)
            return project_wire(row, role)

    def update(self, principal: Principal, project_id: uuid.UUID, body: ProjectUpdate, *,
               expected_version: int | None, request_id: str | None = None) -> dict[str, Any]:
        changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
        if not changes:
            raise AppError("validation_error", "nothing to update",
                           details=[{"field": "body", "message": "send at least one field"}])
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            project, role = visible_project(uow.conn, principal, project_id, "project.update")
            values = {k: (v.value if hasattr(v, "value") else v) for k, v in changes.items()}
            if "framework" in values:
                # The label must name a framework the organization sees; moving the assessed
                # version is PUT /projects/{id}/framework-version.
                bound_version(uow.conn, project["organization_id"], values["framework"])
            values["updated_at"] = utcnow()
            try:
                row = ProjectRepository(uow.conn).update(project_id, values, expected_version=expected_version)
            except IntegrityError as exc:
                raise AppError("duplicate", "a project with this name already exists",
                               details=[{"field": "name", "message": "already in use"}]) from exc
            assert row is not None
            uow.touch(row["organization_id"])
            uow.emit("project.updated", stream_of(project_id), {
                "projectId": str(project_id),
                "changes": {k: v for k, v in values.items() if k != "updated_at"},
            })
            return project_wire(row, role)

    def delete(self, principal: Principal, project_id: uuid.UUID, *, request_id: str | None = None) -> None:
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row, _ = visible_project(uow.conn, principal, project_id, "project.delete")
            ProjectRepository(uow.conn).delete(project_id)
            uow.touch(row["organization_id"])
            uow.emit("project.deleted", stream_of(project_id), {"projectId": str(project_id)})

    # -- members ------------------------------------------------------------------
    # `builtins.list`: in this class body `list` names the method above.
    def members(self, principal: Principal, project_id: uuid.UUID, *, cursor: str | None,
                limit: int) -> tuple[builtins.list[dict[str, Any]], str | None]:
        after = None
        if cursor:
            try:
                after = uuid.UUID(cursor)
            except ValueError as exc:
                raise AppError("invalid_cursor") from exc
        with self.db.read() as conn:
            visible_project(conn, principal, project_id, "project.members.read")
            page = MemberRepository(conn).list(project_id, after=after, limit=limit)
            return [record(r, MEMBER_FIELDS) for r in page.items], page.next_cursor

    def add_member(self, principal: Principal, project_id: uuid.UUID, body: MemberAdd, *,
                   request_id: str | None = None) -> dict[str, Any]:
        """Add a user of the same organization to a project, or change their role in it."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            project, _ = visible_project(uow.conn, principal, project_id, "project.members.manage")
            user = UserRepository(uow.conn).get(body.userId)
            if user is None or user["organization_id"] != project["organization_id"] or not user["is_active"]:
                # Named in the body, missing (or elsewhere, or deactivated): 404, as for every
                # object a body names (docs/api.md).
                raise AppError("not_found", "no such user in this organization",
                               details=[{"field": "userId", "message": "unknown user"}])
            new = MemberRepository(uow.conn).upsert(project_id, body.userId, body.role.value)
            uow.touch(project["organization_id"])
            uow.emit("member.added" if new else "member.role_changed", stream_of(project_id), {
                "projectId": str(project_id), "userId": str(body.userId), "role": body.role.value,
            })
            row = MemberRepository(uow.conn).get(project_id, body.userId)
            assert row is not None  # upserted above, in this transaction
            return record({**row, "email": user["email"], "name": user["name"]}, MEMBER_FIELDS)

    def remove_member(self, principal: Principal, project_id: uuid.UUID, user_id: uuid.UUID, *,
                      request_id: str | None = None) -> None:
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            project, _ = visible_project(uow.conn, principal, project_id, "project.members.manage")
            if not MemberRepository(uow.conn).remove(project_id, user_id):
                raise not_found("member")
            uow.touch(project["organization_id"])
            uow.emit("member.removed", stream_of(project_id),
                     {"projectId": str(project_id), "userId": str(user_id)})


def bound_version(conn: Connection, organization_id: uuid.UUID, framework: str) -> uuid.UUID:
    """The latest version of the framework named `framework` (key or name) among those the
    organization sees. An unknown one, or another organization's, is a 404 naming the field
    `framework`, as for every object a body names (docs/api.md); never a project bound to
    nothing."""
    from studio.domains.frameworks.service import latest_version_named

    version_id = latest_version_named(conn, framework, organization_id)
    if version_id is None:
        raise AppError("not_found", f"framework {framework!r} is not imported",
                       details=[{"field": "framework", "message": "no framework with this key or name; "
                                 "import it first or choose one of GET /api/v1/frameworks"}])
    return version_id


def create_project(uow: UnitOfWork, principal: Principal, body: ProjectCreate) -> Any:
    repo = ProjectRepository(uow.conn)
    if repo.by_name(principal.organization_id, body.name) is not None:
        raise AppError("duplicate", f"a project named {body.name!r} already exists",
                       details=[{"field": "name", "message": "already in use"}])
    now = utcnow()
    project_id = uuid.uuid4()
    # A project starts on the latest version of the framework it names, which must be one
    # its organization sees (the shared catalog or its own).
    version_id = bound_version(uow.conn, principal.organization_id, body.framework)
    try:
        row = repo.create({
            "id": project_id, "organization_id": principal.organization_id, "name": body.name,
            "description": body.description, "framework": body.framework,
            "status": body.status.value, "compliance_score": 0.0, "created_by": principal.user_id,
            "created_at": now, "updated_at": now, "version": 1,
            "framework_version_id": version_id,
        })
    except IntegrityError as exc:  # a concurrent create won the race past the check above
        raise AppError("duplicate", f"a project named {body.name!r} already exists",
                       details=[{"field": "name", "message": "already in use"}]) from exc
    uow.emit("project.created", stream_of(project_id), {
        "projectId": str(project_id), "organizationId": str(principal.organization_id),
        "name": body.name, "framework": body.framework, "status": body.status.value,
        "frameworkVersionId": str(version_id) if version_id else None,
    })
    if not principal.org_wide:
        MemberRepository(uow.conn).upsert(project_id, principal.user_id, ProjectRole.MANAGER.value)
        uow.emit("member.added", stream_of(project_id), {
            "projectId": str(project_id), "userId": str(principal.user_id), "role": "manager"})
    uow.touch(principal.organization_id)
    return row
