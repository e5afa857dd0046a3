from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

import pytest

from agentmw import CircuitOpenError, ControlFlowError, TurnTimeoutError
from agentmw.classify import Failure, FailureScenario, classify_exception, parse_retry_after
from tests.errors import FakeHTTPError, http

S = FailureScenario


@pytest.mark.parametrize(
    ("status", "scenario", "retryable"),
    [
        (429, S.RATE_LIMITED, True),
        (503, S.OVERLOADED, True),
        (529, S.OVERLOADED, True),
        (500, S.SERVER_ERROR, True),
        (502, S.SERVER_ERROR, True),
        (504, S.SERVER_ERROR, True),
        (408, S.TIMEOUT, True),
        (400, S.BAD_REQUEST, False),
        (422, S.BAD_REQUEST, False),
        (401, S.AUTH, False),
        (403, S.AUTH, False),
        (404, S.NOT_FOUND, False),
    ],
)
def test_status_codes(status: int, scenario: FailureScenario, retryable: bool) -> None:
    assert classify_exception(http(status)) == Failure(scenario, retryable, None, status)


def test_409_is_retryable() -> None:
    failure = classify_exception(http(409))
    assert failure.retryable
    assert failure.status_code == 409


def test_status_read_from_status_attr_and_response_only() -> None:
    class StatusOnly(Exception):
        status = 503

    class ResponseOnly(Exception):
        def __init__(self) -> None:
            super().__init__("x")
            self.response = {"status_code": 502, "headers": {}}

    assert classify_exception(StatusOnly()).scenario is S.OVERLOADED
    assert classify_exception(ResponseOnly()).scenario is S.SERVER_ERROR


def test_http_status_enum_and_bool_status() -> None:
    class Enumish(Exception):
        status_code = HTTPStatus.TOO_MANY_REQUESTS

    class Boolish(Exception):
        status_code = True

    assert classify_exception(Enumish()).scenario is S.RATE_LIMITED
    assert classify_exception(Boolish()).scenario is S.UNKNOWN


@pytest.mark.parametrize(
    ("exc", "scenario"),
    [
        (http(429, code="insufficient_quota"), S.QUOTA_EXHAUSTED),
        (http(429, body={"error": {"type": "insufficient_quota"}}), S.QUOTA_EXHAUSTED),
        (http(429, message="You exceeded your current quota"), S.QUOTA_EXHAUSTED),
        (http(429, code="rate_limit_exceeded"), S.RATE_LIMITED),
    ],
)
def test_quota_vs_rate_limit(exc: Exception, scenario: FailureScenario) -> None:
    failure = classify_exception(exc)
    assert failure.scenario is scenario
    assert failure.retryable is (scenario is S.RATE_LIMITED)


@pytest.mark.parametrize(
    "exc",
    [
        http(400, code="context_length_exceeded"),
        http(400, message="This model's maximum context length is 8192 tokens"),
        http(
            400,
            body={"type": "error", "error": {"message": "x", "type": "x"}},
            message="prompt is too long",
        ),
    ],
)
def test_context_overflow(exc: Exception) -> None:
    assert classify_exception(exc) == Failure(S.CONTEXT_OVERFLOW, False, None, 400)


def test_content_filter_code() -> None:
    assert classify_exception(http(400, code="content_filter")).scenario is S.CONTENT_FILTERED


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "nonsense", "retry-after": "9"}, 9.0),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], expected: float | None) -> None:
    assert classify_exception(http(429, headers=headers)).retry_after == expected


def test_retry_after_http_date() -> None:
    when = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    headers = {"retry-after": format_datetime(when, usegmt=True)}
    assert parse_retry_after(headers, now=now) == pytest.approx(30.0)
    assert parse_retry_after({"retry-after": "Tue, 01 Jan 2030 12:00:30 -0000"}, now=now) == (
        pytest.approx(30.0)
    )
    past = format_datetime(when - timedelta(days=1), usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0
    live = datetime.now(UTC) + timedelta(seconds=60)
    failure = classify_exception(
        http(503, headers={"retry-after": format_datetime(live, usegmt=True)})
    )
    assert failure.retry_after is not None
    assert 55 < failure.retry_after <= 60


@pytest.mark.parametrize(
    ("status", "value", "retryable"),
    [(400, "true", True), (500, "false", False), (429, "FALSE", False), (500, "maybe", True)],
)
def test_x_should_retry_overrides(status: int, value: str, retryable: bool) -> None:
    assert (
        classify_exception(http(status, headers={"x-should-retry": value})).retryable is retryable
    )


@pytest.mark.parametrize(
    ("exc", "scenario", "retryable"),
    [
        (TimeoutError(), S.TIMEOUT, True),
        (TurnTimeoutError(1.0, "t"), S.TIMEOUT, True),
        (ConnectionResetError(), S.CONNECTION, True),
        (OSError(111, "refused"), S.CONNECTION, True),
        (OSError(2, "no such file"), S.UNKNOWN, False),
        (json.JSONDecodeError("bad", "{", 0), S.OUTPUT_INVALID, True),
        (ControlFlowError("budget"), S.CONTROL_FLOW, False),
        (CircuitOpenError("b", "m", 1.0), S.CONTROL_FLOW, False),
        (asyncio.CancelledError(), S.CANCELLED, False),
        (ValueError("boom"), S.UNKNOWN, False),
    ],
)
def test_exception_types(exc: BaseException, scenario: FailureScenario, retryable: bool) -> None:
    failure = classify_exception(exc)
    assert (failure.scenario, failure.retryable) == (scenario, retryable)


def test_pydantic_validation_error_is_output_invalid() -> None:
    import pydantic

    class Out(pydantic.BaseModel):
        n: int

    with pytest.raises(pydantic.ValidationError) as info:
        Out.model_validate({"n": "x"})
    assert classify_exception(info.value) == Failure(S.OUTPUT_INVALID, True)


def _raise_from(outer: Exception, inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except Exception as exc:
        return exc


def test_cause_chain() -> None:
    exc = _raise_from(RuntimeError("wrapped"), http(503))
    assert classify_exception(exc).scenario is S.OVERLOADED
    exc = _raise_from(RuntimeError("wrapped"), ConnectionRefusedError())
    assert classify_exception(exc).scenario is S.CONNECTION


def test_context_chain_without_from() -> None:
    def fail() -> None:
        try:
            raise TimeoutError
        except TimeoutError:
            raise KeyError("k") from None

    with pytest.raises(KeyError) as info:
        fail()
    # `from None` hides the context from tracebacks but it is still there: still a timeout.
    assert classify_exception(info.value).scenario is S.TIMEOUT


def test_cyclic_chain_terminates() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    a.__context__ = a
    assert classify_exception(a) == Failure(S.UNKNOWN, False)
    b.__context__ = TimeoutError()
    assert classify_exception(a).scenario is S.TIMEOUT


@pytest.mark.parametrize(
    ("message", "scenario"),
    [
        ("Error 429: slow down", S.RATE_LIMITED),
        ("rate limit reached for requests", S.RATE_LIMITED),
        ("request req_429abc failed", S.UNKNOWN),
        ("id 5030-x", S.UNKNOWN),
        ("upstream returned 503", S.OVERLOADED),
        ("the server is overloaded", S.OVERLOADED),
        ("read timed out", S.TIMEOUT),
        ("connection reset by peer", S.CONNECTION),
        ("invalid api key", S.AUTH),
        ("insufficient_quota for org", S.QUOTA_EXHAUSTED),
        ("maximum context length exceeded", S.CONTEXT_OVERFLOW),
        ("blocked by content filter", S.CONTENT_FILTERED),
        ("HTTP 502 bad gateway", S.SERVER_ERROR),
        ("tried 4290 times", S.UNKNOWN),
    ],
)
def test_message_heuristics_match_whole_words(message: str, scenario: FailureScenario) -> None:
    assert classify_exception(RuntimeError(message)).scenario is scenario


def test_status_beats_message() -> None:
    assert classify_exception(http(404, message="rate limit")).scenario is S.NOT_FOUND


def _httpx() -> Any:
    # The SDKs ship on httpx or, in newer releases, its successor httpx2 (same API).
    try:
        import httpx2 as httpx
    except ImportError:
        httpx = pytest.importorskip("httpx")
    return httpx


def _sdk_response(status: int, headers: dict[str, str] | None = None) -> Any:
    httpx = _httpx()
    request = httpx.Request("POST", "https://api.example.invalid/v1/chat")
    return httpx.Response(status, headers=headers or {}, request=request)


def test_openai_sdk_errors() -> None:
    openai = pytest.importorskip("openai")
    body = {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    quota = openai.RateLimitError("quota", response=_sdk_response(429), body=body)
    assert classify_exception(quota).scenario is S.QUOTA_EXHAUSTED
    limited = openai.RateLimitError(
        "slow down", response=_sdk_response(429, {"retry-after-ms": "1500"}), body=None
    )
    assert classify_exception(limited) == Failure(S.RATE_LIMITED, True, 1.5, 429)
    ctx = openai.BadRequestError(
        "too long", response=_sdk_response(400), body={"code": "context_length_exceeded"}
    )
    assert classify_exception(ctx).scenario is S.CONTEXT_OVERFLOW
    request = _sdk_response(200).request
    assert classify_exception(openai.APITimeoutError(request)).scenario is S.TIMEOUT
    conn = openai.APIConnectionError(request=request)
    assert classify_exception(conn).scenario is S.CONNECTION


def test_anthropic_sdk_errors() -> None:
    anthropic = pytest.importorskip("anthropic")
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    over = anthropic.InternalServerError(
        "Overloaded", response=_sdk_response(529, {"x-should-retry": "true"}), body=body
    )
    assert classify_exception(over) == Failure(S.OVERLOADED, True, None, 529)


def test_httpx_errors() -> None:
    httpx = _httpx()
    response = _sdk_response(503, {"retry-after": "2"})
    exc = httpx.HTTPStatusError("bad", request=response.request, response=response)
    assert classify_exception(exc) == Failure(S.OVERLOADED, True, 2.0, 503)
    assert classify_exception(httpx.ReadTimeout("slow")).scenario is S.TIMEOUT
    assert classify_exception(httpx.ConnectError("down")).scenario is S.CONNECTION


def test_fake_error_helper_is_duck_typed() -> None:
    assert isinstance(http(500), FakeHTTPError)


@pytest.mark.parametrize("code", ["ENOSPC", "EIO", "EAGAIN", "EBUSY"])
def test_a_local_dependency_failure_is_its_own_retryable_scenario(code: str) -> None:
    import errno
    import os

    number = getattr(errno, code)
    direct = OSError(number, os.strerror(number))
    assert classify_exception(direct).scenario is FailureScenario.DEPENDENCY
    assert classify_exception(direct).retryable is True
    wrapped = RuntimeError("saving the draft failed")
    wrapped.__cause__ = direct
    assert classify_exception(wrapped).scenario is FailureScenario.DEPENDENCY


def test_a_locked_sqlite_database_is_a_dependency_failure() -> None:
    import sqlite3

    locked = sqlite3.OperationalError("database is locked")
    assert classify_exception(locked).scenario is FailureScenario.DEPENDENCY
    outer = ValueError("could not record the step")
    outer.__cause__ = locked
    assert classify_exception(outer).scenario is FailureScenario.DEPENDENCY
    other = sqlite3.OperationalError("no such table: x")
    assert classify_exception(other).scenario is FailureScenario.UNKNOWN


def test_the_failure_carries_the_exception_but_never_shows_it() -> None:
    exc = KeyError("secret prompt text")
    failure = classify_exception(exc)
    assert failure.exception is exc
    assert "secret" not in repr(failure)
    assert failure == classify_exception(KeyError("other"))  # the exception is not compared


def test_a_tool_failure_nothing_recognizes_is_a_tool_error() -> None:
    exc = KeyError("missing")
    assert classify_exception(exc).scenario is FailureScenario.UNKNOWN
    assert classify_exception(exc, kind="tool").scenario is FailureScenario.TOOL_ERROR
    assert classify_exception(exc, kind="turn").scenario is FailureScenario.UNKNOWN
    # A recognised failure keeps its scenario on a tool too.
    assert classify_exception(TimeoutError(), kind="tool").scenario is FailureScenario.TIMEOUT
