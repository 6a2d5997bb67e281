"""Rate limiting with the `limits` library: in memory by default, shared through Redis."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from studio.errors import AppError
from studio.gateway.envelope import send_error

log = structlog.get_logger("studio.ratelimit")


@dataclass(slots=True, frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window frees capacity

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_after).encode()),
        ]


class RateLimiter:
    """A sliding-window counter per (limit, key). Fails open if Redis is unreachable:
    an outage of the limiter's store must not take the API down with it."""

    def __init__(self, redis_url: str | None = None, key_prefix: str = "studio-rl"):
        self.storage: Storage
        if redis_url:
            self.storage = RedisStorage(redis_url, implementation="redispy", key_prefix=key_prefix)
        else:
            self.storage = MemoryStorage()
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)

    async def hit(self, item: RateLimitItem, *keys: str) -> Decision:
        try:
            allowed = await self.strategy.hit(item, *keys)
            stats = await self.strategy.get_window_stats(item, *keys)
        except Exception as exc:  # the store is down: let the request through, loudly
            log.warning("rate_limit_store_unavailable", error=str(exc))
            return Decision(True, item.amount, item.amount, 0)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, max(0, stats.remaining), reset_after)

    async def aclose(self) -> None:
        """Close the Redis connections opened on the running event loop."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()


def client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


def principal_key(scope: Scope) -> str | None:
    auth = scope.get("state", {}).get("auth")
    return f"user:{auth.user_id}" if auth else None


class RateLimitMiddleware:
    """Counts each request against `limit` for the key `key(scope)` returns (None: skip).

    Used twice in the stack: by client IP before authentication, and by principal after
    it, so one user cannot escape their budget by changing address nor exhaust another's.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        limit: str,
        key: Callable[[Scope], str | None],
        scope_name: str,
        exempt_paths: tuple[str, ...] = ("/healthz", "/readyz", "/metrics"),
    ):
        self.app = app
        self.limiter = limiter
        self.item = parse(limit)
        self.key = key
        self.scope_name = scope_name
        self.exempt = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        key = self.key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        decision = await self.limiter.hit(self.item, self.scope_name, key)
        if not decision.allowed:
            retry = str(decision.reset_after)
            await send_error(
                scope,
                send,
                AppError(
                    "rate_limited",
                    f"rate limit of {self.item} per {self.scope_name} exceeded; retry in {retry}s",
                    headers={
                        "Retry-After": retry,
                        "RateLimit-Limit": str(decision.limit),
                        "RateLimit-Remaining": "0",
                        "RateLimit-Reset": retry,
                    },
                ),
            )
            return
        extra = decision.headers()

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # Both layers (IP, principal) report; the client sees the budget that will
                # run out first, as the RateLimit header draft asks.
                headers = message.get("headers", [])
                inner = next((v for k, v in headers if k == b"ratelimit-remaining"), None)
                if inner is None or decision.remaining < int(inner):
                    names = {k for k, _ in extra}
                    headers = [(k, v) for k, v in headers if k not in names] + extra
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
