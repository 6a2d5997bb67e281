"""Queries of the auth domain: refresh token families and API tokens."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from studio.db.engine import utcnow
from studio.db.repository import Repository
from studio.domains.auth.models import api_tokens, refresh_tokens
from studio.domains.users.models import users


class ApiTokenRepository(Repository):
    table = api_tokens
    sortable = frozenset({"created_at"})

    def active_by_hash(self, digest: str, now: dt.datetime) -> RowMapping | None:
        query = (
            select(api_tokens, users.c.organization_id, users.c.is_active)
            .join(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.token_hash == digest, api_tokens.c.revoked_at.is_(None))
        )
        row = self.conn.execute(query).mappings().first()
        if row is None or not row["is_active"]:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= now:
            return None
        return row

    def revoke(self, token_id: uuid.UUID, *, owner: uuid.UUID, at: dt.datetime) -> bool:
        """Revoke one of `owner`'s live tokens; False if there is no such token."""
        result = self.conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.user_id == owner,
                   api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at))
        return result.rowcount > 0


class TokenRepository:
    """Refresh tokens: each login starts a family; each refresh rotates within it."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def issue_refresh(
        self, user_id: uuid.UUID, family_id: uuid.UUID, digest: str, expires_at: dt.datetime
    ) -> uuid.UUID:
        token_id = uuid.uuid4()
        self.conn.execute(
            insert(refresh_tokens).values(
                id=token_id,
                user_id=user_id,
                family_id=family_id,
                token_hash=digest,
                created_at=utcnow(),
                expires_at=expires_at,
            )
        )
        return token_id

    def refresh_by_hash(self, digest: str) -> RowMapping | None:
        query = select(refresh_tokens).where(refresh_tokens.c.token_hash == digest)
        return self.conn.execute(query).mappings().first()

    def mark_rotated(self, token_id: uuid.UUID) -> bool:
        """Rotate exactly once: a concurrent second rotation of the same token gets False."""
        result = self.conn.execute(
            update(refresh_tokens)
            .where(
                and_(
                    refresh_tokens.c.id == token_id,
                    refresh_tokens.c.rotated_at.is_(None),
                    refresh_tokens.c.revoked_at.is_(None),
                )
            )
            .values(rotated_at=utcnow())
        )
        return result.rowcount == 1

    def family_deadline(self, family_id: uuid.UUID) -> dt.datetime | None:
        """When the session ends at the latest (newest refresh expiry); None once revoked."""
        query = select(
            func.max(refresh_tokens.c.expires_at), func.count(refresh_tokens.c.revoked_at)
        ).where(refresh_tokens.c.family_id == family_id)
        deadline: dt.datetime | None
        deadline, revoked = self.conn.execute(query).one()
        if deadline is None or revoked:
            return None
        return deadline

    def revoke_family(self, family_id: uuid.UUID) -> int:
        result = self.conn.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return result.rowcount

    def revoke_all_for_user(self, user_id: uuid.UUID) -> None:
        now = utcnow()
        self.conn.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        self.conn.execute(
            update(api_tokens)
            .where(api_tokens.c.user_id == user_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
