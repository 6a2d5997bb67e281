"""Structured logs: one JSON object per line, with the request id bound by the gateway."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog


class _CurrentStderr:
    """Writes to whatever sys.stderr is when a line is logged, not when logging was set up
    (a replaced or closed stream - a test runner's capture - must not break later lines)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _json(event: dict[str, Any], **_: object) -> str:
    # orjson: several times the speed of json.dumps on the one line every request writes.
    return orjson.dumps(event, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    renderer: structlog.typing.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # structlog annotates the file as TextIO but only print()s to it: write and flush suffice.
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        # Not cached: reconfiguring (a CLI command in a test run) must reach every logger.
        cache_logger_on_first_use=False,
    )
    # uvicorn's own access log would duplicate our structured request line.
    logging.getLogger("uvicorn.access").disabled = True
