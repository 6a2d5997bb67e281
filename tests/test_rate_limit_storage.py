"""The limiter's stores: the in-process one (LocalCounters) decides exactly as limits' own
memory store and as Redis do, and forgets idle clients instead of walking them all."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from studio.gateway.rate_limit import LocalCounters, RateLimiter
from tests.conftest import service_url


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limiter(request):
    if request.param == "memory":
        return RateLimiter()
    return RateLimiter(service_url("redis"), key_prefix=f"test-rl-{uuid.uuid4().hex[:8]}")


def test_both_stores_count_a_budget_alike(limiter):
    item, other = parse("5/minute"), parse("2/minute")

    async def script():
        try:
            decisions = [await limiter.hit(item, "ip", "a") for _ in range(7)]
            # another key, and another limit on the same key, have budgets of their own
            fresh = await limiter.hit(item, "ip", "b")
            second = [await limiter.hit(other, "user", "a") for _ in range(3)]
            return decisions, fresh, second
        finally:
            await limiter.aclose()  # on the loop that opened Redis connections

    decisions, fresh, second = asyncio.run(script())
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    assert all(d.limit == 5 and 1 <= d.reset_after <= 120 for d in decisions)
    assert fresh.allowed and fresh.remaining == 4
    assert [d.allowed for d in second] == [True, True, False]


class Clock:
    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_local_counters_decide_as_limits_own_memory_store(monkeypatch):
    """The same script of hits at the same instants, through limits' strategy, on limits'
    MemoryStorage and on LocalCounters: the same decisions and window stats throughout,
    across window boundaries and the previous window's weighting."""
    clock = Clock(1_800_000_000.0)
    monkeypatch.setattr("time.time", clock)  # limits' store (and its stats) read time.time
    ours = SlidingWindowCounterRateLimiter(LocalCounters(clock=clock))
    theirs = SlidingWindowCounterRateLimiter(MemoryStorage())
    items = [parse("5/minute"), parse("3/10 seconds"), parse("20/hour")]
    rng = random.Random(7)

    async def script():
        for step in range(1500):
            clock.now += rng.choice([0, 0, 0.5, 1, 3, 7, 20, 45])
            item, key = rng.choice(items), rng.choice(["a", "b", "c"])
            assert await ours.hit(item, key) == await theirs.hit(item, key), step
            assert await ours.get_window_stats(item, key) == await theirs.get_window_stats(item, key), step

    asyncio.run(script())


def test_idle_clients_are_forgotten():
    clock = Clock(1_800_000_000.0)
    store = LocalCounters(clock=clock)
    limiter = SlidingWindowCounterRateLimiter(store)
    item = parse("10/minute")

    async def script():
        for i in range(1000):
            await limiter.hit(item, f"ip:10.0.{i // 256}.{i % 256}")
        assert len(store.counters) == 1000
        clock.now += 3 * 60  # past both windows of every counter
        await limiter.hit(item, "ip:127.0.0.1")

    asyncio.run(script())
    assert list(store.counters) == [next(iter(store.counters))]  # only the new client's
    assert len(store.expiries) == 1


def test_a_counter_restarted_after_a_clear_keeps_its_own_expiry():
    clock = Clock(1_800_000_000.0)
    store = LocalCounters(clock=clock)

    async def script():
        assert await store.incr("k", 100) == 1
        await store.clear("k")
        clock.now += 50
        assert await store.incr("k", 100) == 1  # a new counter, until +150
        clock.now += 60  # past the first counter's expiry: its heap entry leaves
        await store.incr("other", 100)
        return await store.get("k"), await store.get_expiry("k")

    assert asyncio.run(script()) == (1, clock.now + 40)
