"""Fake provider errors shared by the reliability tests (duck-typed like SDK/httpx errors)."""

from __future__ import annotations

from typing import Any


class FakeResponse:
    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class FakeHTTPError(Exception):
    """Carries `status_code`, `response.headers` and an optional `body`/`code` like SDK errors."""

    def __init__(
        self,
        status: int,
        message: str = "request failed",
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status
        self.response = FakeResponse(status, headers)
        self.code = code
        self.body = body


def http(status: int, **kwargs: Any) -> FakeHTTPError:
    return FakeHTTPError(status, **kwargs)
