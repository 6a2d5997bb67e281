"""The composition root: builds every adapter from settings, in one place.

Nothing connects at import time; `bootstrap()` builds objects, and connections open on
first use. The app, the CLI, workers and tests all start here.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from studio import __version__
from studio.ai.consumers import ControlIndexer, EvidenceAnalyzer
from studio.ai.runtime import build_ai
from studio.ai.service import AiService
from studio.db.engine import Database, UnitOfWork
from studio.documents.extract import Limits
from studio.documents.processor import DocumentProcessor
from studio.documents.service import DocumentService, ExtractedText
from studio.documents.storage import Storage, build_storage
from studio.domains.auth.security import AccessTokens, Passwords
from studio.domains.auth.service import AuthService
from studio.domains.compliance.projection import ComplianceScoreProjection
from studio.domains.compliance.service import ComplianceService
from studio.domains.evidence.service import EvidenceService
from studio.domains.frameworks.models import frameworks
from studio.domains.frameworks.service import FrameworkService
from studio.domains.projects.models import projects
from studio.domains.projects.service import ProjectService
from studio.domains.users.models import users
from studio.domains.users.service import UserService
from studio.events.activity import ProjectActivityProjection
from studio.events.consumers import Consumer
from studio.events.dispatcher import Dispatcher, RetryPolicy
from studio.events.metrics import EVENTS_PUBLISHED
from studio.events.owners import StreamOwners, by_row, itself
from studio.events.service import EventService
from studio.events.store import EventStore
from studio.events.transport_nats import NatsRelay
from studio.gateway.cache import CacheBackend, MemoryCache, RedisCache
from studio.gateway.rate_limit import RateLimiter
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
    storage: Storage
    documents: DocumentService
    frameworks: FrameworkService
    compliance: ComplianceService
    ai: AiService
    events: EventService
    dispatcher: Dispatcher
    relay: NatsRelay | None = None

    def close(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        self.dispatcher.stop()
        self.db.dispose()
        close = getattr(self.cache, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Close the connections bound to the serving event loop (at app shutdown)."""
        await self.limiter.aclose()
        aclose = getattr(self.cache, "aclose", None)
        if aclose is not None:
            await aclose()


def event_consumers(settings: Settings, db: Database, storage: Storage, ai: AiService) -> list[Consumer]:
    """THE table of who consumes which events (subscriptions are on each class).

    consumer (name)                     subscribes to                         effect
    ----------------------------------  ------------------------------------  ----------------------
    ProjectActivityProjection           project.*, evidence.*, member.*       project_activity table
    (project_activity)
    DocumentProcessor                   evidence.uploaded                     evidence_files: type,
    (documents.processor)                                                     text, counts; emits
                                                                              evidence.processed /
                                                                              .processing_failed
    ComplianceScoreProjection           project.*, evidence.*, controls and   compliance_* tables,
    (compliance-score)                  applicability events                  projects.compliance_score
    EvidenceAnalyzer                    evidence.processed                    ai_suggestions, quality
    (ai.evidence_analyzer)                                                        score; emits
                                                                              evidence.analyzed
    ControlIndexer                      framework.imported                    control vectors
    (ai.control_indexer)
    """
    return [
        ProjectActivityProjection(),
        DocumentProcessor(storage, Limits.from_settings(settings), db),
        ComplianceScoreProjection(),
        # Passes run in this order: controls are indexed before evidence is matched to them.
        ControlIndexer(ai),
        EvidenceAnalyzer(ai),
    ]


def stream_owners() -> StreamOwners:
    """THE table of which organization each kind of event stream belongs to: the owner of
    the object the stream is about, whoever acts on it (docs/events.md, "Organizations").

    stream               organization
    -------------------  -------------------------------------------------------------
    project:<id>         the project's          (its evidence, files, members, scores)
    user:<id>            the user's             (sign-ins, tokens, profile)
    org:<id>             that organization
    framework:<id>       the framework's owner: its organization, or none for the shared
                         catalog (a super_admin reads those events)
    framework-mapping:…  none: suggested mappings between shared frameworks
    mappings             none: control mappings (one stream for all owners: an
                         organization's own mappings are not yet in its trail)
    auth:…               none: failed sign-ins of unknown e-mail addresses

    A new kind of stream needs its line here; until it has one, its events are in no
    organization's trail and each new stream of that kind is logged as a warning.
    """
    return StreamOwners({
        "project": by_row(projects),
        "user": by_row(users),
        "org": itself,
        "framework": by_row(frameworks),
        "framework-mapping": None,
        "mappings": None,
        "auth": None,
    })


def log_published(uow: UnitOfWork) -> None:
    """One structured line and one counter tick per committed event."""
    for ev in uow.appended:
        EVENTS_PUBLISHED.labels(ev.type).inc()
        log.info("event_published", event_id=str(ev.id), type=ev.type, stream=ev.stream,
                 position=ev.position, source=ev.source, actor=ev.metadata.get("actor"),
                 request_id=ev.metadata.get("request_id"))


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
        owners=stream_owners(),
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
    cache: CacheBackend = RedisCache(settings.redis_url, prefix=f"{settings.redis_key_prefix}-cache") if settings.redis_url else MemoryCache()

    def invalidate_cache(uow: UnitOfWork) -> None:
        for org in uow.touched_orgs:
            try:
                cache.bump(org)
            except Exception as exc:  # the write has committed; reads bypass a dead cache
                log.warning("cache_invalidation_failed", organization=org, error=str(exc))

    db.after_commit.append(invalidate_cache)
    storage = build_storage(settings)
    evidence = EvidenceService(db)
    # The AI service: its model loads on first use, never at start-up; it reads controls
    # from the imported frameworks and changes evidence through the evidence service.
    ai = build_ai(db, settings, evidence=evidence, text_source=ExtractedText())
    db.after_commit.append(log_published)
    dispatcher = Dispatcher(
        db,
        event_consumers(settings, db, storage, ai),
        retry=RetryPolicy(settings.event_max_attempts, settings.event_retry_base_seconds,
                          settings.event_retry_max_seconds),
        batch_size=settings.event_batch_size,
        poll_interval=settings.event_poll_interval_seconds,
    )
    db.after_commit.append(dispatcher.wake)
    relay = None
    if settings.nats_url:
        relay = NatsRelay(db, settings.nats_url, settings.nats_stream, settings.nats_subject_prefix)
        db.after_commit.append(relay.wake)
    container = Container(
        settings=settings,
        db=db,
        store=store,
        passwords=passwords,
        tokens=tokens,
        limiter=RateLimiter(settings.redis_url, key_prefix=f"{settings.redis_key_prefix}-rl"),
        cache=cache,
        users=UserService(db, passwords),
        auth=AuthService(db, passwords, tokens, settings.refresh_token_ttl_seconds),
        projects=ProjectService(db),
        evidence=evidence,
        storage=storage,
        documents=DocumentService(db, storage, max_upload_bytes=settings.max_upload_bytes),
        dispatcher=dispatcher,
        relay=relay,
        frameworks=FrameworkService(db),
        compliance=ComplianceService(db),
        ai=ai,
        events=EventService(db, store, dispatcher.consumers),
    )
    return container
