"""Use cases of authentication: login, refresh rotation with reuse detection, logout,
personal API tokens; and resolving a presented credential to an AuthInfo."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from studio.db.engine import Database, utcnow
from studio.db.repository import Page
from studio.domains.auth.repository import ApiTokenRepository, TokenRepository
from studio.domains.auth.schemas import ApiTokenCreate
from studio.domains.auth.security import (
    API_TOKEN_PREFIX,
    AccessTokens,
    Passwords,
    new_opaque_token,
    token_digest,
)
from studio.domains.users.repository import UserRepository, load_principal
from studio.domains.users.service import require, user_wire
from studio.errors import AppError, not_found
from studio.events.envelope import iso_utc
from studio.principal import AuthInfo, Principal
from studio.records import record

API_TOKEN_FIELDS = ("id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
# Updating last_used_at on every request would turn reads into writes; once a minute is enough.
LAST_USED_GRANULARITY = dt.timedelta(minutes=1)


class AuthService:
    def __init__(self, db: Database, passwords: Passwords, tokens: AccessTokens, refresh_ttl: int):
        self.db = db
        self.passwords = passwords
        self.tokens = tokens
        self.refresh_ttl = dt.timedelta(seconds=refresh_ttl)

    def principal(self, auth: AuthInfo) -> Principal | None:
        """The caller a proven credential belongs to, with their role as stored now (None if
        they are gone, inactive or their session was revoked)."""
        with self.db.read() as conn:
            return load_principal(conn, auth)

    def acting_as(self, email: str, via: str) -> Principal | None:
        """The active user with this e-mail address, for work done on their behalf outside a
        request (the command line, the demo loader)."""
        with self.db.read() as conn:
            user = UserRepository(conn).by_email(email)
            if user is None:
                return None
            return load_principal(conn, AuthInfo(user["id"], user["organization_id"], via))

    # -- sessions ---------------------------------------------------------------
    def login(self, email: str, password: str, *, request_id: str | None = None,
              client_ip: str | None = None) -> dict[str, Any]:
        """Check a password and start a session (a new refresh token family)."""
        with self.db.read() as conn:
            user = UserRepository(conn).by_email(email)
        ok = self.passwords.verify(user["password_hash"] if user else None, password)
        if not ok or user is None or not user["is_active"]:
            org = str(user["organization_id"]) if user else None
            with self.db.write(request_id=request_id, actor="anonymous", organization=org) as uow:
                stream = f"user:{user['id']}" if user else "auth:unknown-users"
                uow.emit("auth.login_failed", stream, {
                    "email": email.lower(), "userId": str(user["id"]) if user else None,
                    "clientIp": client_ip, "reason": "inactive" if user and ok else "bad_credentials",
                })
            raise AppError("invalid_credentials")
        if self.passwords.needs_rehash(user["password_hash"]):
            new_hash = self.passwords.hash(password)
        else:
            new_hash = None
        with self.db.write(actor=str(user["id"]), organization=str(user["organization_id"]),
                           request_id=request_id) as uow:
            if new_hash:
                UserRepository(uow.conn).update(user["id"], {"password_hash": new_hash})
            pair = self._start_family(uow, user)
            uow.emit("auth.logged_in", f"user:{user['id']}", {"userId": str(user["id"]),
                     "sessionId": pair.pop("_family"), "clientIp": client_ip})
        return pair

    def _start_family(self, uow: Any, user: Any, family_id: uuid.UUID | None = None) -> dict[str, Any]:
        family_id = family_id or uuid.uuid4()
        refresh = new_opaque_token()
        refresh_expires = utcnow() + self.refresh_ttl
        TokenRepository(uow.conn).issue_refresh(user["id"], family_id, token_digest(refresh), refresh_expires)
        access, expires = self.tokens.issue(user["id"], user["organization_id"], family_id)
        return {
            "accessToken": access, "tokenType": "Bearer", "expiresAt": iso_utc(expires),
            "refreshToken": refresh, "refreshExpiresAt": iso_utc(refresh_expires),
            "user": user_wire(user), "_family": str(family_id),
        }

    def refresh(self, refresh_token: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Rotate a refresh token. Presenting one that was already rotated revokes its family."""
        digest = token_digest(refresh_token)
        reused = False
        with self.db.write(request_id=request_id) as uow:
            repo = TokenRepository(uow.conn)
            row = repo.refresh_by_hash(digest)
            if row is None:
                raise AppError("invalid_token", "unknown refresh token")
            # Whoever holds the token acts for its user (or against them, on reuse).
            uow.context["actor"] = str(row["user_id"])
            if row["revoked_at"] is not None and row["rotated_at"] is None:
                raise AppError("invalid_token", "this session has ended; log in again")
            if row["rotated_at"] is not None or not repo.mark_rotated(row["id"]):
                # Reuse: someone holds a copy. End the whole session for everyone.
                repo.revoke_family(row["family_id"])
                owner = UserRepository(uow.conn).get(row["user_id"])
                if owner is not None:
                    uow.context["organization"] = str(owner["organization_id"])
                # Cached reads of the revoked session must not outlive it.
                uow.touch(owner["organization_id"] if owner else None)
                uow.emit("auth.refresh_reused", f"user:{row['user_id']}",
                         {"userId": str(row["user_id"]), "sessionId": str(row["family_id"])})
                reused = True
            elif row["expires_at"] <= utcnow():
                raise AppError("invalid_token", "refresh token expired; log in again")
            else:
                user = UserRepository(uow.conn).get(row["user_id"])
                if user is None or not user["is_active"]:
                    raise AppError("invalid_token", "user is inactive")
                pair = self._start_family(uow, user, family_id=row["family_id"])
                pair.pop("_family")
        if reused:  # raised after commit, so the revocation sticks
            raise AppError("refresh_token_reused")
        return pair

    def logout(self, principal: Principal, session_id: uuid.UUID | None, refresh_token: str | None,
               *, request_id: str | None = None) -> None:
        """End the session: its refresh family is revoked and its access tokens stop working."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            repo = TokenRepository(uow.conn)
            families = set()
            if session_id:
                families.add(session_id)
            if refresh_token:
                row = repo.refresh_by_hash(token_digest(refresh_token))
                if row is not None and row["user_id"] == principal.user_id:
                    families.add(row["family_id"])
            for family in families:
                repo.revoke_family(family)
            uow.touch(principal.organization_id)
            uow.emit("auth.logged_out", f"user:{principal.user_id}",
                     {"userId": str(principal.user_id), "sessions": sorted(map(str, families))})

    def session_deadline(self, session_id: uuid.UUID) -> dt.datetime | None:
        """The latest moment a login session may last: its refresh family's expiry (None: ended)."""
        with self.db.read() as conn:
            return TokenRepository(conn).family_deadline(session_id)

    # -- API tokens -------------------------------------------------------------
    def create_api_token(self, principal: Principal, body: ApiTokenCreate, *,
                         request_id: str | None = None) -> dict[str, Any]:
        """Mint a personal API token; the secret is returned once and stored only hashed."""
        require(principal, "tokens.manage_own")
        if principal.via == "api_token":
            raise AppError("forbidden", "API tokens cannot mint API tokens; log in interactively")
        secret = new_opaque_token(API_TOKEN_PREFIX)
        now = utcnow()
        token_id = uuid.uuid4()
        expires = now + dt.timedelta(days=body.expiresInDays) if body.expiresInDays else None
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row = ApiTokenRepository(uow.conn).create({
                "id": token_id, "user_id": principal.user_id, "name": body.name,
                "token_hash": token_digest(secret), "prefix": secret[:10], "created_at": now,
                "expires_at": expires,
            })
            uow.emit("token.created", f"user:{principal.user_id}",
                     {"tokenId": str(token_id), "userId": str(principal.user_id), "name": body.name})
        return {**record(row, API_TOKEN_FIELDS), "token": secret}

    def list_api_tokens(self, principal: Principal, *, cursor: str | None, limit: int) -> Page:
        require(principal, "tokens.manage_own")
        with self.db.read() as conn:
            repo = ApiTokenRepository(conn)
            return repo.find_all(equal={"user_id": principal.user_id}, cursor=cursor, limit=limit,
                                 desc=True)

    def revoke_api_token(self, principal: Principal, token_id: uuid.UUID, *,
                         request_id: str | None = None) -> None:
        require(principal, "tokens.manage_own")
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            repo = ApiTokenRepository(uow.conn)
            if not repo.revoke(token_id, owner=principal.user_id, at=utcnow()):
                raise not_found("API token")
            uow.touch(principal.organization_id)
            uow.emit("token.revoked", f"user:{principal.user_id}",
                     {"tokenId": str(token_id), "userId": str(principal.user_id)})

    # -- resolving credentials -------------------------------------------------
    def resolve_api_token(self, secret: str) -> AuthInfo | None:
        """Map a presented API token to its user, or None if unknown, revoked or expired."""
        now = utcnow()
        with self.db.read() as conn:
            row = ApiTokenRepository(conn).active_by_hash(token_digest(secret), now)
        if row is None:
            return None
        last = row["last_used_at"]
        if last is None or now - last > LAST_USED_GRANULARITY:
            with self.db.write() as uow:
                ApiTokenRepository(uow.conn).update(row["id"], {"last_used_at": now})
        return AuthInfo(user_id=row["user_id"], organization_id=row["organization_id"],
                        kind="api_token", token_id=row["id"])

    def verify_access(self, token: str, kind: str = "jwt") -> AuthInfo:
        claims = self.tokens.verify(token)
        return AuthInfo(user_id=claims.user_id, organization_id=claims.organization_id,
                        kind=kind, session_id=claims.session_id)
