"""Rate limiter cost per hit as the number of active clients grows.

    python bench/rate_limit_bench.py [--hits 2000]

For 0, 1,000, 10,000 and 50,000 other clients inside the window, times hits of one
client through the limiter the gateway uses (limits' sliding-window-counter strategy,
hit + window stats), on limits' own MemoryStorage (the baseline) and on the store the
gateway uses in memory (LocalCounters), side by side in one run. The event loop turns
once after each hit, as it does between requests, so that work a store schedules on the
loop (limits' MemoryStorage starts an expiry pass over every counter) is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from limits import parse  # noqa: E402
from limits.aio.storage import MemoryStorage  # noqa: E402
from limits.aio.strategies import SlidingWindowCounterRateLimiter  # noqa: E402

from studio.gateway.rate_limit import LocalCounters  # noqa: E402

ITEM = parse("1000/minute")


async def per_hit_us(store_kind: str, others: int, hits: int) -> float:
    strategy = SlidingWindowCounterRateLimiter(MemoryStorage() if store_kind == "limits" else LocalCounters())
    for i in range(others):
        await strategy.hit(ITEM, f"ip:10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    await asyncio.sleep(0.05)  # let pending expiry work finish before timing
    start = time.perf_counter()
    for _ in range(hits):
        await strategy.hit(ITEM, "ip:127.0.0.1")
        await strategy.get_window_stats(ITEM, "ip:127.0.0.1")
        await asyncio.sleep(0)
    return (time.perf_counter() - start) / hits * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=2000)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'other clients':>14} {'limits MemoryStorage':>22} {'LocalCounters':>15} {'ratio':>7}")
    for others in (0, 1_000, 10_000, 50_000):
        # Fewer timed hits where the baseline costs milliseconds each.
        hits = args.hits if others < 10_000 else max(50, args.hits // 20)
        baseline = asyncio.run(per_hit_us("limits", others, hits))
        ours = asyncio.run(per_hit_us("local", others, hits))
        print(f"{others:>14,} {baseline:>19.1f} us {ours:>12.1f} us {baseline / ours:>6.1f}x")


if __name__ == "__main__":
    main()
