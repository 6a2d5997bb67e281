"""The one way a command opens the container, and closes it when the command ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from studio.bootstrap import Container, bootstrap
from studio.logging import configure_logging
from studio.settings import Settings


@contextmanager
def open_container() -> Iterator[Container]:
    """The container for one command, from the environment's settings; its connections,
    threads and pools are closed when the command ends, however it ends."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    c = bootstrap(settings)
    try:
        yield c
    finally:
        c.close()
