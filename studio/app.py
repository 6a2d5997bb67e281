"""The ASGI application: the gateway stack declared top-down around the API routes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import HTMLResponse, Response

from studio import __version__
from studio.ai.routes import router as ai_router
from studio.bootstrap import Container, bootstrap
from studio.documents.routes import router as documents_router
from studio.domains.auth.routes import router as auth_router
from studio.domains.compliance.routes import router as compliance_router
from studio.domains.evidence.routes import router as evidence_router
from studio.domains.frameworks.routes import router as frameworks_router
from studio.domains.projects.routes import router as projects_router
from studio.domains.users.routes import router as users_router
from studio.errors import AppError, DatabaseUnavailable
from studio.events.routes import router as events_router
from studio.gateway.authentication import AuthenticationMiddleware
from studio.gateway.body_limit import BodyLimitMiddleware
from studio.gateway.cache import ResponseCacheMiddleware
from studio.gateway.envelope import ErrorEnvelopeMiddleware
from studio.gateway.rate_limit import RateLimitMiddleware, client_ip, principal_key
from studio.gateway.request_id import RequestIdMiddleware
from studio.gateway.security_headers import SecurityHeadersMiddleware
from studio.http.api import document_errors, install_error_handlers, ok
from studio.settings import Settings
from studio.web.site import UPLOAD_PATHS, upload_body_limit
from studio.web.site import install as install_web

API_PREFIX = "/api/v1"
PUBLIC_API_PATHS = frozenset({f"{API_PREFIX}/auth/login", f"{API_PREFIX}/auth/refresh"})
DOCS_STATIC = Path(fastapi_offline.__file__).parent / "static"

API_DESCRIPTION = """
Studio Platform's REST API. Every response is an envelope
`{success, data, error: {code, message, details}, timestamp, requestId}`; see docs/api.md
for the error catalogue. Authenticate with `Authorization: Bearer <token>`: an access
token from `POST /api/v1/auth/login`, or a personal API token (`stp_...`).
"""


def create_app(container: Container | None = None, settings: Settings | None = None) -> Any:
    """Build the app. The gateway runs outermost first, exactly in this order:

    request id → security headers → error envelope → body limit → rate limit (IP)
    → authentication → rate limit (principal) → response cache → routes
    (authorization and validation are route dependencies; handlers build the envelope).
    """
    c = container or bootstrap(settings)
    s = c.settings

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Event delivery runs beside the API: consumers unless --no-workers, and the
        # NATS relay whenever a NATS URL is configured.
        if s.run_workers:
            c.dispatcher.start()
        if c.relay is not None:
            c.relay.start()
        try:
            yield
        finally:
            if c.relay is not None:
                c.relay.stop()
            c.dispatcher.stop()
            await c.aclose()

    api = FastAPI(
        lifespan=lifespan,
        title="Studio Platform API",
        version=__version__,
        description=API_DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        # Observability here is the structured request log and Prometheus /metrics;
        # FastAPI's OpenTelemetry hooks would only check for providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    api.state.container = c
    install_error_handlers(api)
    api.mount("/static/docs", StaticFiles(directory=DOCS_STATIC), name="docs-static")

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Studio Platform API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    @api.get("/healthz", tags=["operations"])
    async def healthz(request: Request) -> Response:
        """The process is alive."""
        return ok(request, {"status": "ok", "version": __version__})

    @api.get("/readyz", tags=["operations"])
    def readyz(request: Request) -> Response:
        """The database answers; 503 otherwise."""
        if not c.db.ping():
            raise AppError("service_unavailable", "the database is unavailable",
                           headers={"Retry-After": "5"})
        return ok(request, {"status": "ready", "database": c.db.dialect})

    @api.get("/metrics", tags=["operations"], include_in_schema=False)
    def metrics() -> Response:
        """Prometheus metrics; consumer lag and parked counts are read at scrape time."""
        with contextlib.suppress(DatabaseUnavailable):
            c.dispatcher.update_gauges()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # Routes are tried in order and no two API paths overlap (tests/test_api_docs.py checks
    # it), so the order changes only how soon a request finds its route: the domains that
    # serve most requests come first. Each domain router is included directly (a nested
    # router would be matched through twice).
    domain_routers = (evidence_router, documents_router, projects_router, compliance_router,
                      frameworks_router, events_router, users_router, auth_router, ai_router)
    for domain_router in domain_routers:
        api.include_router(domain_router, prefix=API_PREFIX)
    install_web(api)
    document_errors(api, f"{API_PREFIX}/")

    app: Any = api
    if s.cache_enabled:
        # File downloads stream (the cache would hold them whole); event reads change with
        # every commit and with consumers' progress. Neither is cached.
        app = ResponseCacheMiddleware(app, c.cache, s.cache_ttl_seconds, prefix=f"{API_PREFIX}/",
                                      exclude=(f"{API_PREFIX}/files/", f"{API_PREFIX}/events"))
    if s.rate_limit_enabled:
        app = RateLimitMiddleware(app, c.limiter, s.rate_limit_user, principal_key, "user")
    app = AuthenticationMiddleware(
        app,
        verify_jwt=c.auth.verify_access,
        resolve_api_token=c.auth.resolve_api_token,
        csrf_key=s.signing_key,
        protected_prefix=f"{API_PREFIX}/",
        public_paths=PUBLIC_API_PATHS,
    )
    if s.rate_limit_enabled:
        app = RateLimitMiddleware(app, c.limiter, s.rate_limit_ip, client_ip, "ip")
    # Uploads stream to storage under their own cap (64 KiB more covers multipart framing);
    # framework catalogs (NIST MODERATE is 1.8 MB) are uploaded whole to the import endpoints.
    upload_cap = s.max_upload_bytes + 64 * 1024
    app = BodyLimitMiddleware(app, s.max_body_bytes, overrides={
        f"{API_PREFIX}/evidence/*/files": upload_cap,
        f"{API_PREFIX}/frameworks/import": 50 * 1024 * 1024,
        f"{API_PREFIX}/mappings/import": 50 * 1024 * 1024,
        **dict.fromkeys(UPLOAD_PATHS, upload_body_limit(s.max_upload_bytes)),
    })
    app = ErrorEnvelopeMiddleware(app)
    app = SecurityHeadersMiddleware(app)
    app = RequestIdMiddleware(app)
    # The outermost layer carries the API and the container, for tests and OpenAPI export.
    app.api = api
    app.container = c
    return app
