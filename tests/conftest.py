"""Shared fixtures: service URLs (skip or fail per AGENTMW_REQUIRE_SERVICES), global resets."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

import agentmw
from agentmw.core import default_registry, set_default_stack
from agentmw.core.context import set_outside_session

REQUIRE_SERVICES = os.environ.get("AGENTMW_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("AGENTMW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_CONNINFO = os.environ.get(
    "AGENTMW_TEST_PG_CONNINFO", "host=127.0.0.1 port=5432 dbname=test user=postgres"
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _need(service: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    reason = f"{service} is not reachable at {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} and AGENTMW_REQUIRE_SERVICES=1 requires it")
    pytest.skip(f"{reason} (set AGENTMW_REQUIRE_SERVICES=1 to make this a failure)")


@pytest.fixture
def redis_url() -> str:
    """A Redis URL on a test database; skips (or fails under AGENTMW_REQUIRE_SERVICES=1)."""
    _need("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def pg_conninfo() -> str:
    """A PostgreSQL conninfo for the `test` database; skips or fails like `redis_url`."""
    _need("PostgreSQL", "127.0.0.1", 5432)
    return PG_CONNINFO


@pytest.fixture(autouse=True)
def _reset_globals() -> Iterator[None]:
    previous = set_default_stack(agentmw.Stack())
    yield
    set_default_stack(previous)
    set_outside_session("warn")
    default_registry().clear()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over the sync and the async path."""
    return str(request.param)
