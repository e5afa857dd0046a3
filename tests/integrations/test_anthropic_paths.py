"""Every Anthropic call path through the stack: beta, the stream helpers, raw and
streaming-response wrappers and derived clients; sync and async, counted at the server."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest

from agentmw import Stack, Usage
from agentmw.guardrails import PIIRedactor
from agentmw.integrations import instrument
from agentmw.middleware import Guardrails, Retry
from agentmw.testing import FakeClock

from .payloads import CLAUDE, message_body, messages_stream
from .sdk import Spy, collect, done, failure_of, opened, parsed
from .stub import Reply, StubServer
from .test_anthropic import MESSAGES, error

USAGE = Usage(115, 20, cache_read_tokens=100, cache_write_tokens=5)
STREAM_USAGE = Usage(115, 42, cache_read_tokens=100, cache_write_tokens=5)
MAIL = ["write to ann@ex", "ample.org", " today, thanks"]
REDACTED = "write to [REDACTED:email] today, thanks"
KW: dict[str, Any] = {"model": CLAUDE, "max_tokens": 64, "messages": MESSAGES}


_BASES: dict[tuple[str, str, int], Any] = {}


def client(mode: str, base: str, **options: Any) -> Any:
    """A fresh uninstrumented client: a copy of one per (mode, server), sharing its pool."""
    # An async pool belongs to one event loop (each async test runs its own).
    key = (mode, base, id(asyncio.get_running_loop()) if mode == "async" else 0)
    if key not in _BASES:
        cls = anthropic.Anthropic if mode == "sync" else anthropic.AsyncAnthropic
        _BASES[key] = cls(base_url=base, api_key="sk-ant-test", max_retries=0)
    return _BASES[key].copy(**options)


async def _message(c: Any, path: str) -> tuple[Any, Any]:
    if path in ("messages", "beta.messages"):
        resource = c.messages if path == "messages" else c.beta.messages
        out = await done(resource.create(**KW))
        return out, out
    if path == "with_options":
        out = await done(c.with_options(timeout=30).messages.create(**KW))
        return out, out
    if path.endswith("with_raw_response"):
        owner = c.beta.messages if path.startswith("beta") else c.messages
        wrapper = await done(owner.with_raw_response.create(**KW))
        return wrapper, await parsed(wrapper)
    owner = c.beta.messages if path.startswith("beta") else c.messages
    async with opened(owner.with_streaming_response.create(**KW)) as wrapper:
        return wrapper, await parsed(wrapper)


PATHS = [
    ("messages", "messages.create", "/v1/messages"),
    ("beta.messages", "beta.messages.create", "/v1/messages"),
    ("with_options", "messages.create", "/v1/messages"),
    ("with_raw_response", "messages.create", "/v1/messages"),
    ("beta.with_raw_response", "beta.messages.create", "/v1/messages"),
    ("with_streaming_response", "messages.create", "/v1/messages"),
    ("beta.with_streaming_response", "beta.messages.create", "/v1/messages"),
]


@pytest.mark.parametrize(("path", "name", "url"), PATHS)
async def test_every_message_path_is_one_turn_with_usage_and_the_sdk_type(
    stub: StubServer, mode: str, path: str, name: str, url: str
) -> None:
    stub.add(Reply(body=message_body()), Reply(body=message_body()))
    bare, _ = await _message(client(mode, stub.url), path)
    spy = Spy()
    got, body = await _message(instrument(client(mode, stub.url), stack=Stack([spy])), path)
    assert type(got) is type(bare)
    assert body.content[0].text == "hello"
    (call,) = spy.calls
    assert (call.name, call.model, call.usage, call.provider) == (name, CLAUDE, USAGE, "anthropic")
    assert [r[0] for r in stub.requests] == [url, url]


@pytest.mark.parametrize("beta", [False, True])
async def test_the_stream_helper_guards_text_stream_and_final_message(
    stub: StubServer, mode: str, beta: bool
) -> None:
    spy = Spy()
    guard = Guardrails([PIIRedactor(["email"])], stream_window=32)
    c = instrument(client(mode, stub.url), stack=Stack([spy, guard]))
    stub.add(messages_stream(MAIL))
    resource = c.beta.messages if beta else c.messages
    async with opened(resource.stream(**KW)) as stream:
        text = "".join(await collect(stream.text_stream))
        final = await done(stream.get_final_message())
    assert text == REDACTED
    assert final.content[0].text == REDACTED
    assert final.usage.output_tokens == 42
    (call,) = spy.calls
    assert call.usage == STREAM_USAGE
    assert call.name == ("beta.messages.create" if beta else "messages.create")
    assert len(stub.requests) == 1


async def test_a_streamed_raw_response_parses_to_the_guarded_stream(
    stub: StubServer, mode: str
) -> None:
    guard = Guardrails([PIIRedactor(["email"])], stream_window=32)
    c = instrument(client(mode, stub.url), stack=Stack([guard]))
    stub.add(messages_stream(MAIL))
    async with opened(c.messages.with_streaming_response.create(**KW, stream=True)) as wrapper:
        events = await collect(await parsed(wrapper))
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == REDACTED


async def test_retry_honours_retry_after_and_x_should_retry(stub: StubServer, mode: str) -> None:
    clock = FakeClock()
    spy = Spy()
    retry = Retry(attempts=4, sleep=clock.sleep, asleep=clock.asleep)
    c = instrument(client(mode, stub.url), stack=Stack([retry, spy]))
    stub.add(
        error(529, "overloaded_error", "Overloaded", {"retry-after-ms": "250"}),
        error(429, "rate_limit_error", "slow", {"retry-after": "3"}),
        error(500, "api_error", "no", {"x-should-retry": "false"}),
    )
    exc = await failure_of(lambda: c.beta.messages.with_raw_response.create(**KW))
    assert isinstance(exc, anthropic.InternalServerError)
    assert clock.sleeps == [0.25, 3.0]
    assert spy.attempts == [1, 2, 3]
    assert len(stub.requests) == 3  # max_retries=0: each attempt is one request
