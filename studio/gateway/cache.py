"""Response cache for authenticated GETs: key method:url:user, TTL, and invalidation by
organization generation.

Every committed write bumps its organization's generation (UnitOfWork.touch, after
commit), and the generation is part of every key. A read that follows a write, by the
same user or another, therefore never sees the entry cached before it. Entries are kept
without their envelope prefix so a hit still answers with its own requestId and time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol, cast

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from studio.gateway.envelope import DATA_MARKER, envelope_prefix, request_id_of

log = structlog.get_logger("studio.cache")

# Set in scope["state"] by a handler whose answer must not be cached.
NO_STORE = "cache_no_store"
JSON_TYPE = (b"content-type", b"application/json")


class CacheBackend(Protocol):
    """Where cached responses and organization generations live.

    `generation` must be read-your-writes consistent with `bump`: once `bump(org)` has
    returned, every later `generation(org)` in any process returns the new value.
    """

    async def generation(self, org: str) -> int: ...
    def bump(self, org: str) -> None: ...
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: int) -> None: ...


class MemoryCache:
    """One process: a bounded LRU of entries and a dict of generations."""

    def __init__(self, max_entries: int = 10_000):
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._generations: dict[str, int] = {}

    async def generation(self, org: str) -> int:
        return self._generations.get(org, 0) + self._generations.get("*", 0)

    def bump(self, org: str) -> None:
        self._generations[org] = self._generations.get(org, 0) + 1

    async def get(self, key: str) -> bytes | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            self._entries.pop(key, None)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        self._entries[key] = (time.monotonic() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class RedisCache:
    """Several processes: generations are Redis counters, entries Redis keys with TTL."""

    def __init__(self, url: str, prefix: str = "studio-cache"):
        import redis
        import redis.asyncio as aioredis

        self.prefix = prefix
        self._sync = redis.Redis.from_url(url, socket_timeout=2)
        self._async = aioredis.Redis.from_url(url, socket_timeout=2)

    async def generation(self, org: str) -> int:
        values = await self._async.mget(f"{self.prefix}:gen:{org}", f"{self.prefix}:gen:*")
        return sum(int(v) for v in values if v is not None)

    def bump(self, org: str) -> None:
        self._sync.incr(f"{self.prefix}:gen:{org}")

    async def get(self, key: str) -> bytes | None:
        # redis-py types every reply as bytes | str; without decode_responses it is bytes.
        return cast("bytes | None", await self._async.get(f"{self.prefix}:{key}"))

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self._async.set(f"{self.prefix}:{key}", value, ex=ttl)

    async def aclose(self) -> None:
        await self._async.aclose()

    def close(self) -> None:
        self._sync.close()


class ResponseCacheMiddleware:
    """Serves repeated authenticated GETs of `prefix` paths from the cache."""

    def __init__(self, app: ASGIApp, backend: CacheBackend, ttl: int, prefix: str = "/api/v1/",
                 exclude: tuple[str, ...] = (), max_entry_bytes: int = 512 * 1024):
        self.app = app
        self.backend = backend
        self.ttl = ttl
        self.prefix = prefix
        self.exclude = exclude
        self.max_entry_bytes = max_entry_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        auth = scope.get("state", {}).get("auth") if scope["type"] == "http" else None
        if (
            auth is None
            or self.ttl <= 0
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefix)
            or scope["path"].startswith(self.exclude)
        ):
            await self.app(scope, receive, send)
            return
        org = str(auth.organization_id)
        try:
            generation = await self.backend.generation(org)
            query = scope.get("query_string", b"").decode("latin-1")
            key = f"{org}:{generation}:GET:{scope['path']}?{query}:{auth.user_id}"
            hit = await self.backend.get(key)
        except Exception as exc:  # the cache is an optimisation: never fail a read for it
            log.warning("cache_unavailable", error=str(exc))
            await self.app(scope, receive, send)
            return
        if hit is not None:
            body = envelope_prefix(request_id_of(scope)) + hit
            await send({
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-cache", b"hit"),
                ],
            })
            await send({"type": "http.response.body", "body": body})
            return

        keep = False
        size = 0
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal keep, size
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                # Only envelopes are kept: a file download streams past without being buffered.
                keep = message["status"] == 200 and JSON_TYPE in headers
                message["headers"] = [*headers, (b"x-cache", b"miss")]
            elif message["type"] == "http.response.body" and keep:
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_entry_bytes:
                    keep = False
                    chunks.clear()
                else:
                    chunks.append(chunk)
            await send(message)

        await self.app(scope, receive, capture)
        if keep and chunks and not scope.get("state", {}).get(NO_STORE):
            body = b"".join(chunks)
            cut = body.find(DATA_MARKER)
            if cut != -1 and body.startswith(b'{"success":true'):
                try:
                    await self.backend.set(key, body[cut + len(DATA_MARKER):], self.ttl)
                except Exception as exc:
                    log.warning("cache_unavailable", error=str(exc))


