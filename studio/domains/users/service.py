"""Use cases of the users domain: admins manage the users of their organization."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError

from studio.db.engine import Database, utcnow
from studio.domains.auth.passwords import password_problem
from studio.domains.auth.repository import TokenRepository
from studio.domains.auth.security import Passwords
from studio.domains.users.repository import OrganizationRepository, UserRepository
from studio.domains.users.schemas import UserCreate, UserUpdate
from studio.errors import AppError, forbidden, not_found
from studio.permissions import Role, allowed
from studio.principal import Principal
from studio.records import record

USER_FIELDS = (
    "id", "organization_id", "email", "name", "role", "is_active", "created_at", "updated_at",
    "version",
)  # fmt: skip


def user_wire(row: Any) -> dict[str, Any]:
    return record(row, USER_FIELDS)


def require(principal: Principal, action: str) -> None:
    if not allowed(principal.role, action):
        raise forbidden(action)


def _check_role_grant(principal: Principal, role: Role) -> None:
    # Nobody hands out more power than they hold: only a super_admin makes super_admins.
    if role == Role.SUPER_ADMIN and not principal.is_super_admin:
        raise forbidden("grant the super_admin role")


class UserService:
    def __init__(self, db: Database, passwords: Passwords):
        self.db = db
        self.passwords = passwords

    def organization_exists(self, name: str) -> bool:
        with self.db.read() as conn:
            return OrganizationRepository(conn).by_name(name) is not None

    def organization(self, principal: Principal) -> dict[str, Any]:
        """The caller's organization."""
        with self.db.read() as conn:
            row = OrganizationRepository(conn).get(principal.organization_id)
        if row is None:
            raise not_found("organization")
        return record(row, ("id", "name", "created_at"))

    def list(self, principal: Principal, *, cursor: str | None, limit: int, sort: str,
             desc: bool) -> tuple[list[dict[str, Any]], str | None]:
        """List the users the caller may see, one keyset page at a time."""
        require(principal, "users.read")
        with self.db.read() as conn:
            repo = UserRepository(conn)
            page = repo.find_all(where=repo.scope(principal), cursor=cursor, limit=limit, sort=sort, desc=desc)
        return [user_wire(row) for row in page.items], page.next_cursor

    def get(self, principal: Principal, user_id: uuid.UUID) -> dict[str, Any]:
        if user_id != principal.user_id:
            require(principal, "users.read")
        with self.db.read() as conn:
            repo = UserRepository(conn)
            row = repo.get(user_id, where=repo.scope(principal))
            if row is None:
                raise not_found("user")
            return user_wire(row)

    def create(self, principal: Principal, body: UserCreate, *, request_id: str | None = None) -> dict[str, Any]:
        """Create a user in the caller's organization (any organization for a super_admin)."""
        require(principal, "users.manage")
        _check_role_grant(principal, body.role)
        org_id = principal.organization_id
        if body.organizationId and body.organizationId != org_id:
            if not principal.is_super_admin:
                raise forbidden("create users in another organization")
            org_id = body.organizationId
        password_hash = self.passwords.hash(body.password)
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            if org_id != principal.organization_id and OrganizationRepository(uow.conn).get(org_id) is None:
                raise AppError("validation_error", details=[{"field": "organizationId", "message": "no such organization"}])
            row = create_user(
                uow, org_id=org_id, email=str(body.email), name=body.name, role=body.role,
                password_hash=password_hash,
            )
            return user_wire(row)

    def update(self, principal: Principal, user_id: uuid.UUID, body: UserUpdate, *,
               expected_version: int | None, request_id: str | None = None) -> dict[str, Any]:
        require(principal, "users.manage")
        changes: dict[str, Any] = body.model_dump(exclude_unset=True)
        if not changes:
            raise AppError("validation_error", "nothing to update", details=[{"field": "body", "message": "send at least one field"}])
        values: dict[str, Any] = {}
        if "name" in changes and changes["name"] is not None:
            values["name"] = changes["name"]
        if changes.get("role") is not None:
            _check_role_grant(principal, changes["role"])
            if user_id == principal.user_id:
                raise AppError("conflict", "you cannot change your own role")
            values["role"] = changes["role"].value
        if changes.get("isActive") is not None:
            if user_id == principal.user_id and not changes["isActive"]:
                raise AppError("conflict", "you cannot deactivate yourself")
            values["is_active"] = changes["isActive"]
        if changes.get("password"):
            self._check_password_for(principal, user_id, changes["password"], changes.get("name"))
            values["password_hash"] = self.passwords.hash(changes["password"])
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            repo = UserRepository(uow.conn)
            current = repo.get(user_id, where=repo.scope(principal))
            if current is None:
                raise not_found("user")
            if current["role"] == Role.SUPER_ADMIN and not principal.is_super_admin:
                raise forbidden("change a super_admin")
            values["updated_at"] = utcnow()
            row = repo.update(user_id, values, expected_version=expected_version)
            assert row is not None
            if values.get("is_active") is False:
                # Reactivating later must not bring the old sessions and API tokens back.
                TokenRepository(uow.conn).revoke_all_for_user(user_id)
            uow.touch(row["organization_id"])
            changed = sorted(k for k in values if k not in ("updated_at", "password_hash"))
            if "password_hash" in values:
                changed.append("password")
            uow.emit("user.updated", f"user:{user_id}", {"userId": str(user_id), "changed": changed,
                     **({"role": values["role"]} if "role" in values else {})})
            return user_wire(row)

    def _check_password_for(self, principal: Principal, user_id: uuid.UUID, password: str,
                            new_name: str | None) -> None:
        """Refuse a new password that contains the user's stored e-mail address or name (the
        schema checked what the request itself carried)."""
        with self.db.read() as conn:
            repo = UserRepository(conn)
            current = repo.get(user_id, where=repo.scope(principal))
        if current is None:
            raise not_found("user")
        problem = password_problem(password, email=current["email"],
                                   name=new_name or current["name"])
        if problem:
            raise AppError("validation_error", f"password: {problem}",
                           details=[{"field": "password", "message": problem}])

    def delete(self, principal: Principal, user_id: uuid.UUID, *, request_id: str | None = None) -> None:
        """Deactivate a user and end their sessions; the record stays for the audit trail."""
        require(principal, "users.manage")
        if user_id == principal.user_id:
            raise AppError("conflict", "you cannot delete yourself")
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            repo = UserRepository(uow.conn)
            current = repo.get(user_id, where=repo.scope(principal))
            if current is None or not current["is_active"]:
                raise not_found("user")
            if current["role"] == Role.SUPER_ADMIN and not principal.is_super_admin:
                raise forbidden("delete a super_admin")
            repo.update(user_id, {"is_active": False, "updated_at": utcnow()})
            TokenRepository(uow.conn).revoke_all_for_user(user_id)
            uow.touch(current["organization_id"])
            uow.emit("user.deleted", f"user:{user_id}", {"userId": str(user_id)})


def create_user(uow: Any, *, org_id: uuid.UUID, email: str, name: str, role: Role | str,
                password_hash: str | None) -> Any:
    """Insert a user and record user.created (shared by the API, the CLI and the demo)."""
    now = utcnow()
    repo = UserRepository(uow.conn)
    if repo.by_email(email) is not None:
        raise AppError("duplicate", f"a user with e-mail {email!r} already exists",
                       details=[{"field": "email", "message": "already in use"}])
    user_id = uuid.uuid4()
    try:
        row = repo.create({
            "id": user_id, "organization_id": org_id, "email": email.lower(), "name": name,
            "role": str(Role(role).value), "password_hash": password_hash, "is_active": True,
            "created_at": now, "updated_at": now, "version": 1,
        })
    except IntegrityError as exc:
        raise AppError("duplicate", "a user with this e-mail already exists") from exc
    uow.touch(org_id)
    uow.emit("user.created", f"user:{user_id}", {
        "userId": str(user_id), "organizationId": str(org_id), "email": email.lower(),
        "role": str(Role(role).value),
    })
    return row


def create_organization(uow: Any, name: str) -> Any:
    repo = OrganizationRepository(uow.conn)
    if repo.by_name(name) is not None:
        raise AppError("duplicate", f"organization {name!r} already exists")
    org_id = uuid.uuid4()
    row = repo.create({"id": org_id, "name": name, "created_at": utcnow()})
    uow.emit("organization.created", f"org:{org_id}", {"organizationId": str(org_id), "name": name})
    return row
