"""How `studio serve` runs the app under uvicorn; the benchmarks start their servers with the
same options, so a figure measured there is the figure of the served product.

httptools (C HTTP parser) and uvloop (libuv event loop) are pinned dependencies and chosen
explicitly rather than left to uvicorn's auto-detection: with uvicorn's default pure-Python
h11 parser a 1 GiB upload ran at 0.13 x `cp`, limited by parsing (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

HTTP = "httptools"
LOOP = "uvloop"

# Keyword arguments for uvicorn.run / uvicorn.Config besides the app, host and port.
UVICORN_OPTIONS: dict[str, Any] = {
    "http": HTTP,
    "loop": LOOP,
    "access_log": False,  # the app logs one structured line per request
    "server_header": False,
}

# The same, as `python -m uvicorn` command-line flags.
UVICORN_FLAGS: tuple[str, ...] = (
    "--http", HTTP, "--loop", LOOP, "--no-access-log", "--no-server-header",
)  # fmt: skip
