"""The composition root: builds every adapter from settings, in one place.

Nothing connects at import time; `bootstrap()` builds objects, and connections open on
first use. The app, the CLI, workers and tests all start here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from studio import __version__
from studio.ai.consumers import ControlIndexer, EvidenceAnalyzer
from studio.ai.routes import install_routes as install_ai_routes
from studio.ai.runtime import build_ai
from studio.db import Database, UnitOfWork
from studio.domains.auth.service import AuthService
from studio.domains.evidence.service import EvidenceService
from studio.domains.projects.service import ProjectService
from studio.domains.users.service import UserService
from studio.events.store import EventStore
from studio.gateway.cache import CacheBackend, MemoryCache, RedisCache
from studio.gateway.rate_limit import RateLimiter
from studio.security import AccessTokens, Passwords
from studio.settings import Settings

log = structlog.get_logger("studio.bootstrap")


@dataclass
class Container:
    settings: Settings
    db: Database
    store: EventStore
    passwords: Passwords
    tokens: AccessTokens
    limiter: RateLimiter
    cache: CacheBackend
    users: UserService
    auth: AuthService
    projects: ProjectService
    evidence: EvidenceService
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.db.dispose()


def bootstrap(settings: Settings | None = None) -> Container:
    settings = settings or Settings()
    store = EventStore()
    db = Database(
        settings.resolved_database_url,
        store,
        static_metadata={
            "service": "studio-api",
            "environment": settings.environment,
            "app_version": __version__,
        },
    )
    passwords = Passwords(
        settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
    )
    tokens = AccessTokens(
        settings.signing_key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    cache: CacheBackend = RedisCache(settings.redis_url) if settings.redis_url else MemoryCache()

    def invalidate_cache(uow: UnitOfWork) -> None:
        for org in uow.touched_orgs:
            try:
                cache.bump(org)
            except Exception as exc:  # the write has committed; reads bypass a dead cache
                log.warning("cache_invalidation_failed", organization=org, error=str(exc))

    db.after_commit.append(invalidate_cache)
    container = Container(
        settings=settings,
        db=db,
        store=store,
        passwords=passwords,
        tokens=tokens,
        limiter=RateLimiter(settings.redis_url),
        cache=cache,
        users=UserService(db, passwords),
        auth=AuthService(db, passwords, tokens, settings.refresh_token_ttl_seconds),
        projects=ProjectService(db),
        evidence=EvidenceService(db),
    )
    # The AI service: its model loads on first use. Its consumers wait for the dispatcher's
    # table: evidence.processed → EvidenceAnalyzer, framework.imported → ControlIndexer.
    ai = build_ai(db, settings.data_dir)
    container.extras["ai"] = ai
    container.extras.setdefault("consumers", []).extend([EvidenceAnalyzer(ai), ControlIndexer(ai)])
    container.extras.setdefault("app_extensions", []).append(install_ai_routes)
    return container
