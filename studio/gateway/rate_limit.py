"""Rate limiting with the `limits` library: in memory by default, shared through Redis."""

from __future__ import annotations

import functools
import hashlib
import heapq
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from limits import RateLimitItem, parse, parse_many
from limits.aio.storage import RedisStorage, SlidingWindowCounterSupport, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage.base import TimestampedSlidingWindow
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from studio.domains.auth.security import known_device, purpose_key
from studio.errors import AppError
from studio.gateway.envelope import send_error
from studio.settings import Settings

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


class LocalCounters(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """In-process counters for `limits`' sliding-window-counter strategy (the default store).

    limits' own MemoryStorage starts an expiry pass over every counter after each
    increment, so a hit cost grew with the number of clients seen in the last two windows:
    0.04 ms alone, over 1 ms beside 10,000 other clients, 6-11 ms beside 50,000
    (bench/rate_limit_bench.py), a cost any client able to vary its address or token
    could impose on everyone. Here a counter's expiry goes on a heap when the counter starts,
    and each increment drops the counters whose time has passed: amortized O(log n) per
    hit, no task, no thread. The window arithmetic is limits' own (sliding_window_keys,
    the weighting of the previous window). Every method runs to completion without
    awaiting anything, so the one event loop that uses it needs no locks.
    """

    STORAGE_SCHEME = ["studio+memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 clock: Callable[[], float] = time.time, **options: Any):
        self.counters: dict[str, list[float]] = {}  # key -> [count, expires at]
        self.expiries: list[tuple[float, str]] = []  # heap of (expires at, key)
        self.clock = clock
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def _add(self, key: str, expiry: float, amount: int, now: float) -> int:
        heap = self.expiries
        while heap and heap[0][0] <= now:
            _, old = heapq.heappop(heap)
            entry = self.counters.get(old)
            if entry is not None and entry[1] <= now:  # not restarted since
                del self.counters[old]
        entry = self.counters.get(key)
        if entry is None or entry[1] <= now:
            entry = self.counters[key] = [0, now + expiry]
            heapq.heappush(heap, (now + expiry, key))
        entry[0] += amount
        return int(entry[0])

    def _count(self, key: str, now: float) -> int:
        entry = self.counters.get(key)
        return 0 if entry is None or entry[1] <= now else int(entry[0])

    def _window(self, key: str, expiry: int, now: float) -> tuple[int, float, int, float]:
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous_count = self._count(previous_key, now)
        previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry if previous_count else 0.0
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous_count, previous_ttl, self._count(current_key, now), current_ttl

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        return self._add(key, expiry, amount, self.clock())

    async def get(self, key: str) -> int:
        return self._count(key, self.clock())

    async def get_expiry(self, key: str) -> float:
        now = self.clock()
        entry = self.counters.get(key)
        return entry[1] if entry is not None and entry[1] > now else now

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        count = len(self.counters)
        self.counters.clear()
        self.expiries.clear()
        return count

    async def clear(self, key: str) -> None:
        self.counters.pop(key, None)

    async def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = self.clock()
        previous_count, previous_ttl, current_count, _ = self._window(key, expiry, now)
        if math.floor(previous_count * previous_ttl / expiry + current_count) + amount > limit:
            return False
        # As in limits' stores, the current window's counter lives two windows long: it is
        # the previous window during the next one.
        self._add(self.sliding_window_keys(key, expiry, now)[1], 2 * expiry, amount, now)
        return True

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return self._window(key, expiry, self.clock())

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        for window_key in self.sliding_window_keys(key, expiry, self.clock()):
            self.counters.pop(window_key, None)


class RateLimiter:
    """A sliding-window counter per (limit, key). Fails open if Redis is unreachable:
    an outage of the limiter's store must not take the API down with it."""

    def __init__(self, redis_url: str | None = None, key_prefix: str = "studio-rl"):
        self.storage: Storage
        if redis_url:
            self.storage = RedisStorage(redis_url, implementation="redispy", key_prefix=key_prefix)
        else:
            self.storage = LocalCounters()
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

    async def test(self, item: RateLimitItem, *keys: str) -> Decision:
        """Whether one more hit would be allowed, without counting it."""
        try:
            if await self.strategy.test(item, *keys):
                return Decision(True, item.amount, item.amount, 0)
            stats = await self.strategy.get_window_stats(item, *keys)
        except Exception as exc:  # as in hit(): the store is down, let the request through
            log.warning("rate_limit_store_unavailable", error=str(exc))
            return Decision(True, item.amount, item.amount, 0)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(False, item.amount, 0, reset_after)

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

        async def send_with_headers(message: Message) -> None:
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


# -- login ------------------------------------------------------------------------------
DEVICE_COOKIE = "studio_device"
DEVICE_COOKIE_MAX_AGE = 180 * 24 * 3600


@functools.lru_cache(maxsize=32)
def _limits(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec))


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """The budgets a failure of this attempt spends: (limit, keys) pairs."""

    failure_budgets: tuple[tuple[RateLimitItem, tuple[str, ...]], ...]


class LoginThrottle:
    """Slows password guessing without letting a stranger lock a user out.

    Three budgets, all in the shared limiter (memory or Redis):

    - per client address, every attempt (`per_ip`): one address cannot try many accounts;
    - per account and address, failures only (`per_account_ip`, tiers such as
      "5/minute;20/hour;50/day"): a guesser aiming at one account slows down step by step,
      while the same account from other addresses and other accounts from this address do
      not;
    - per account, failures from devices that never logged in to it (`per_account`): many
      addresses together cannot guess on without end. When it is spent, only devices that
      carry a "known device" token for the account (set on each successful login,
      security.device_token) may still try; a known device has a budget of its own
      (`per_account_ip`, keyed by the device), so the token is no free pass either.

    Failures are counted after the fact: each budget is tested before the password is
    checked and spent only when the check fails, so a user's successful logins cost nothing.
    Concurrent guesses from one address are bounded by the per-address budget, which counts
    every attempt up front. Accounts are keyed by a MAC of the e-mail address, so the store
    holds no addresses, and unknown e-mails are counted exactly like real ones (nothing
    tells them apart).
    """

    def __init__(self, limiter: RateLimiter, key: str, *, per_ip: str, per_account_ip: str,
                 per_account: str, enabled: bool = True):
        self.limiter = limiter
        self.key = key
        self.enabled = enabled
        self.per_ip = _limits(per_ip)
        self.per_account_ip = _limits(per_account_ip)
        self.per_account = _limits(per_account)

    @classmethod
    def from_settings(cls, limiter: RateLimiter, settings: Settings) -> LoginThrottle:
        return cls(limiter, settings.signing_key, per_ip=settings.rate_limit_login,
                   per_account_ip=settings.rate_limit_login_account_ip,
                   per_account=settings.rate_limit_login_account,
                   enabled=settings.rate_limit_enabled)

    def _account(self, email: str) -> str:
        return hmac.new(purpose_key(self.key, "login-account"), email.lower().encode(),
                        hashlib.sha256).hexdigest()[:32]

    async def admit(self, client: str, email: str, device_cookie: str | None) -> LoginAttempt:
        """Count the attempt against the address and refuse it (429) while a budget that
        applies to it is spent."""
        for item in self.per_ip:
            decision = await self.limiter.hit(item, "login", f"ip:{client}")
            if not decision.allowed:
                raise _refused(decision, "ip")
        device = known_device(self.key, email, device_cookie)
        budgets: list[tuple[RateLimitItem, tuple[str, ...], str]]
        if device is not None:
            budgets = [(item, ("login-device", device), "device") for item in self.per_account_ip]
        else:
            account = self._account(email)
            budgets = [(item, ("login-account-ip", account, client), "account_ip")
                       for item in self.per_account_ip]
            budgets += [(item, ("login-account", account), "account") for item in self.per_account]
        for item, keys, budget in budgets:
            decision = await self.limiter.test(item, *keys)
            if not decision.allowed:
                raise _refused(decision, budget)
        return LoginAttempt(tuple((item, keys) for item, keys, _ in budgets))

    async def failed(self, attempt: LoginAttempt) -> None:
        for item, keys in attempt.failure_budgets:
            await self.limiter.hit(item, *keys)

    async def login(self, check: Callable[[], dict[str, Any]], *, client: str, email: str,
                    device_cookie: str | None) -> dict[str, Any]:
        """Run `check` (the password check, in a worker thread) under the throttle."""
        if not self.enabled:
            return await run_in_threadpool(check)
        attempt = await self.admit(client, email, device_cookie)
        try:
            return await run_in_threadpool(check)
        except AppError as err:
            if err.code == "invalid_credentials":
                await self.failed(attempt)
            raise


_MESSAGES = {
    "ip": "too many login attempts from your address; retry in {retry}s",
    "device": "too many failed logins from this device; retry in {retry}s",
    "account_ip": "too many failed logins for this account from your address; retry in {retry}s",
    "account": "too many failed logins for this account from unrecognized devices; retry in "
               "{retry}s, or log in from a device you have logged in from before",
}


def _refused(decision: Decision, budget: str) -> AppError:
    retry = str(decision.reset_after)
    log.info("login_throttled", budget=budget, retry_after=decision.reset_after)
    return AppError("rate_limited", _MESSAGES[budget].format(retry=retry),
                    headers={"Retry-After": retry, "RateLimit-Limit": str(decision.limit),
                             "RateLimit-Remaining": "0", "RateLimit-Reset": retry})


def set_device_cookie(response: Response, token: str, *, secure: bool) -> None:
    """Remember this device for the login throttle: HttpOnly, sent only to this site."""
    response.set_cookie(DEVICE_COOKIE, token, max_age=DEVICE_COOKIE_MAX_AGE, httponly=True,
                        samesite="strict", secure=secure, path="/")
