"""The Anthropic SDK under `instrument()`: usage, stream usage, errors, Retry, guardrails."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from agentmw import Stack, Usage
from agentmw.classify import FailureScenario, classify_exception
from agentmw.guardrails import PIIRedactor
from agentmw.integrations import instrument
from agentmw.integrations.anthropic import provider_name
from agentmw.middleware import Guardrails, Retry
from agentmw.testing import FakeClock

from .sdk import Spy, collect, done, failure_of
from .stub import Reply, StubServer, closed_port

MODEL = "claude-test-model"
MESSAGES = [{"role": "user", "content": "hi"}]
USAGE = {
    "input_tokens": 10,
    "output_tokens": 20,
    "cache_creation_input_tokens": 5,
    "cache_read_input_tokens": 100,
}


def client(mode: str, base: str, **options: Any) -> Any:
    options.setdefault("max_retries", 0)
    cls = anthropic.Anthropic if mode == "sync" else anthropic.AsyncAnthropic
    return cls(base_url=base, api_key="sk-ant-test", **options)


def message(text: str = "hello", usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage or USAGE,
    }


def stream(parts: list[str]) -> Reply:
    start = {**message(), "content": [], "usage": {**USAGE, "output_tokens": 1}}
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
    ]  # fmt: skip
    for part in parts:
        delta = {"type": "text_delta", "text": part}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 42},
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return Reply(events=events)


def error(status: int, kind: str, text: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"type": "error", "error": {"type": kind, "message": text}}
    return Reply(status, body, headers or {})


async def test_message_usage_includes_cache_reads_and_writes(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    stub.add(Reply(body=message()))
    result = await done(c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES))
    assert isinstance(result, anthropic.types.Message)
    (call,) = spy.calls
    assert call.usage == Usage(115, 20, cache_read_tokens=100, cache_write_tokens=5)
    assert call.provider == "anthropic"
    assert call.model == MODEL
    assert stub.requests[0][0] == "/v1/messages"


async def test_stream_usage_combines_message_start_and_delta(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    stub.add(stream(["Hel", "lo"]))
    events = await collect(
        await done(c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True))
    )
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"
    # input (with cache) from message_start, output from the last message_delta
    assert spy.calls[0].usage == Usage(115, 42, cache_read_tokens=100, cache_write_tokens=5)
    assert spy.calls[0].usage_estimated is False


async def test_stream_redacts_across_text_deltas(stub: StubServer, mode: str) -> None:
    guard = Guardrails([PIIRedactor(["email"])], stream_window=32)
    c = instrument(client(mode, stub.url), stack=Stack([guard]))
    stub.add(stream(["write to ann@ex", "ample.org", " today, thanks"]))
    events = await collect(
        await done(c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True))
    )
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "write to [REDACTED:email] today, thanks"


async def test_message_output_is_redacted(stub: StubServer, mode: str) -> None:
    c = instrument(client(mode, stub.url), stack=Stack([Guardrails([PIIRedactor(["email"])])]))
    stub.add(Reply(body=message("mail ann@example.org")))
    result = await done(c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES))
    assert result.content[0].text == "mail [REDACTED:email]"


ERRORS = [
    (error(529, "overloaded_error", "Overloaded"),
     FailureScenario.OVERLOADED, True, None),
    (error(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit",
           {"retry-after": "12"}),
     FailureScenario.RATE_LIMITED, True, 12.0),
    (error(500, "api_error", "Internal server error"),
     FailureScenario.SERVER_ERROR, True, None),
    (error(400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
     FailureScenario.CONTEXT_OVERFLOW, False, None),
    (error(401, "authentication_error", "invalid x-api-key"),
     FailureScenario.AUTH, False, None),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "scenario", "retryable", "after"), ERRORS)
async def test_sdk_errors_are_classified(
    stub: StubServer, mode: str, reply: Reply, scenario: Any, retryable: bool,
    after: float | None,
) -> None:  # fmt: skip
    c = instrument(client(mode, stub.url), stack=Stack())
    stub.add(reply)
    exc = await failure_of(lambda: c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES))
    assert isinstance(exc, anthropic.APIStatusError)
    assert exc.status_code == reply.status
    failure = classify_exception(exc)
    assert (failure.scenario, failure.retryable, failure.retry_after) == (
        scenario, retryable, after,
    )  # fmt: skip


async def test_connection_error_is_classified(mode: str) -> None:
    c = instrument(client(mode, closed_port()), stack=Stack())
    exc = await failure_of(lambda: c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES))
    assert type(exc) is anthropic.APIConnectionError
    assert classify_exception(exc).scenario is FailureScenario.CONNECTION


async def test_retry_honours_retry_after_ms_on_529(stub: StubServer, mode: str) -> None:
    clock = FakeClock()
    c = instrument(
        client(mode, stub.url),
        stack=Stack([Retry(attempts=2, sleep=clock.sleep, asleep=clock.asleep)]),
    )
    stub.add(
        error(529, "overloaded_error", "Overloaded", {"retry-after-ms": "750"}),
        Reply(body=message()),
    )
    result = await done(c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES))
    assert result.content[0].text == "hello"
    assert clock.sleeps == [0.75]


async def test_retry_before_the_first_stream_event(stub: StubServer, mode: str) -> None:
    clock = FakeClock()
    spy = Spy()
    c = instrument(
        client(mode, stub.url),
        stack=Stack([Retry(attempts=2, sleep=clock.sleep, asleep=clock.asleep), spy]),
    )
    stub.add(error(429, "rate_limit_error", "slow", {"retry-after": "2"}), stream(["ok"]))
    events = await collect(
        await done(c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True))
    )
    assert events[-1].type == "message_stop"
    assert clock.sleeps == [2.0]
    assert spy.attempts == [1, 2]


def test_provider_name() -> None:
    assert provider_name(anthropic.Anthropic(api_key="k")) == "anthropic"
    assert provider_name(anthropic.AsyncAnthropic(api_key="k")) == "anthropic"
