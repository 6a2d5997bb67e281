"""A small HTTP/1.1 keep-alive load generator, used when `wrk` is not installed.

    python -m bench.loadgen URL --connections 64 --duration 10 [-H 'Name: value']

Prints one JSON line: requests, errors (non-2xx or socket), requests/s, p50/p99 in ms.
Raw asyncio streams rather than an HTTP client library: the generator must cost far less
per request than the server it measures, or it measures itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _connection(host: str, port: int, request: bytes, stop: float,
                      latencies: list[float], counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            counts[0 if status_line[9:10] == b"2" else 1] += 1
    except (ConnectionError, asyncio.IncompleteReadError):
        counts[1] += 1
    finally:
        writer.close()


async def run(url: str, connections: int, duration: float, headers: list[str]) -> dict[str, float]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", *headers, "", ""]
    request = "\r\n".join(lines).encode("latin-1")
    latencies: list[float] = []
    counts = [0, 0]
    started = time.perf_counter()
    stop = started + duration
    await asyncio.gather(*(
        _connection(parts.hostname or "127.0.0.1", parts.port or 80, request, stop, latencies, counts)
        for _ in range(connections)
    ))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    return {"requests": counts[0] + counts[1], "errors": counts[1],
            "rps": counts[0] / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("-H", "--header", action="append", default=[])
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.connections, args.duration, args.header))))


if __name__ == "__main__":
    main()
