"""Servers with their own authentication settings, stopped (and their PostgreSQL database dropped) after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import Server, drop_database, make_server


@contextlib.contextmanager
def running(tmp: Path, env: dict[str, str]) -> Iterator[Server]:
    server = make_server(tmp, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        url = server.env.get("NEUROCORTEX_DATABASE_URL", "")
        if "nc_test_" in url:
            drop_database(url.rsplit("/", 1)[1])
