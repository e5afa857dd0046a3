from __future__ import annotations

from collections.abc import Iterator

import pytest

from .stub import StubServer


@pytest.fixture(scope="module")
def _server() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def stub(_server: StubServer) -> StubServer:
    _server.replies.clear()
    _server.requests.clear()
    _server.headers.clear()
    _server.default = None
    return _server
