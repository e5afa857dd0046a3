"""Every OpenAI call path through the stack: parse, helpers, raw and streaming-response
wrappers, beta, embeddings and derived clients; sync and async, counted at the server."""

from __future__ import annotations

import asyncio
import warnings
from decimal import Decimal
from typing import Any

import openai
import pytest

from agentmw import GuardrailViolation, Stack, Usage
from agentmw.errors import UninstrumentedCallWarning
from agentmw.guardrails import PIIRedactor
from agentmw.integrations import AsyncTurnStream, TurnStream, instrument
from agentmw.middleware import Guardrails, Retry, Telemetry
from agentmw.pricing import ModelPricing, PricingTable
from agentmw.testing import FakeClock

from .payloads import GPT, embedding_body, response_body, responses_stream
from .sdk import Spy, collect, done, failure_of, opened, parsed, spans
from .stub import Reply, StubServer
from .test_openai import MESSAGES, chat_stream, completion, error

USAGE = Usage(100, 20, cache_read_tokens=40, reasoning_tokens=8)
MAIL = ["mail bo", "b@exam", "ple.com now", " please"]
REDACTED = "mail [REDACTED:email] now please"


_BASES: dict[tuple[str, str, int], Any] = {}


def client(mode: str, base: str, **options: Any) -> Any:
    """A fresh uninstrumented client: a copy of one per (mode, server), sharing its pool."""
    # An async pool belongs to one event loop (each async test runs its own).
    key = (mode, base, id(asyncio.get_running_loop()) if mode == "async" else 0)
    if key not in _BASES:
        cls = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
        _BASES[key] = cls(base_url=f"{base}/v1", api_key="sk-test", max_retries=0)
    return _BASES[key].copy(**options)


def redactor(window: int | str = 32) -> Guardrails:
    return Guardrails([PIIRedactor(["email"])], stream_window=window)


# Each path makes one chat completion request; the value is what the caller works with.
async def _chat(c: Any, path: str) -> tuple[Any, Any]:
    kw: dict[str, Any] = {"model": GPT, "messages": MESSAGES}
    if path == "create":
        out = await done(c.chat.completions.create(**kw))
        return out, out
    if path == "parse":
        out = await done(c.chat.completions.parse(**kw))
        return out, out
    if path == "beta.chat.completions.create":
        out = await done(c.beta.chat.completions.create(**kw))
        return out, out
    if path == "with_options":
        out = await done(c.with_options(timeout=30).chat.completions.create(**kw))
        return out, out
    if path == "copy":
        out = await done(c.copy(max_retries=0).chat.completions.create(**kw))
        return out, out
    if path.startswith("with_raw_response."):
        wrapper = await done(getattr(c.chat.completions.with_raw_response, path[18:])(**kw))
        return wrapper, await parsed(wrapper)
    if path == "client.with_raw_response":
        wrapper = await done(c.with_raw_response.chat.completions.create(**kw))
        return wrapper, await parsed(wrapper)
    method = getattr(c.chat.completions.with_streaming_response, path.rpartition(".")[2])
    async with opened(method(**kw)) as wrapper:
        return wrapper, await parsed(wrapper)


CHAT_PATHS = [
    ("create", "chat.completions.create"),
    ("parse", "chat.completions.parse"),
    ("beta.chat.completions.create", "chat.completions.create"),
    ("with_options", "chat.completions.create"),
    ("copy", "chat.completions.create"),
    ("with_raw_response.create", "chat.completions.create"),
    ("with_raw_response.parse", "chat.completions.parse"),
    ("client.with_raw_response", "chat.completions.create"),
    ("with_streaming_response.create", "chat.completions.create"),
    ("with_streaming_response.parse", "chat.completions.parse"),
]


@pytest.mark.parametrize(("path", "name"), CHAT_PATHS)
async def test_every_chat_path_is_one_turn_with_usage_and_the_sdk_type(
    stub: StubServer, mode: str, path: str, name: str
) -> None:
    stub.add(Reply(body=completion()), Reply(body=completion()))
    bare, _ = await _chat(client(mode, stub.url), path)  # what the SDK returns on its own
    spy = Spy()
    got, body = await _chat(instrument(client(mode, stub.url), stack=Stack([spy])), path)
    assert type(got) is type(bare)
    assert body.choices[0].message.content == "hello"
    (call,) = spy.calls
    assert (call.name, call.model, call.usage) == (name, GPT, USAGE)
    assert len(stub.requests) == 2  # one each: nothing bypassed, nothing sent twice


async def test_wrappers_accessed_before_instrument_are_covered(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = client(mode, stub.url)
    raw = c.chat.completions.with_raw_response  # cached by the SDK before instrument
    streaming = c.with_streaming_response.chat.completions
    instrument(c, stack=Stack([spy]))
    stub.add(Reply(body=completion()), Reply(body=completion()))
    await parsed(await done(raw.create(model=GPT, messages=MESSAGES)))
    async with opened(streaming.create(model=GPT, messages=MESSAGES)) as wrapper:
        await parsed(wrapper)
    assert [call.usage for call in spy.calls] == [USAGE, USAGE]


async def test_a_blocked_raw_output_raises_and_the_wrapper_is_untouched(
    stub: StubServer, mode: str
) -> None:
    c = instrument(client(mode, stub.url), stack=Stack([redactor()]))
    stub.add(Reply(body=completion("mail ann@example.org")))
    exc = await failure_of(
        lambda: c.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES)
    )
    assert isinstance(exc, GuardrailViolation)  # a raw response cannot carry a redaction
    block = Guardrails([PIIRedactor(["email"], strategy="block")])
    c = instrument(client(mode, stub.url), stack=Stack([block]))
    stub.add(Reply(body=completion("mail ann@example.org")))
    exc = await failure_of(
        lambda: c.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES)
    )
    assert isinstance(exc, GuardrailViolation)
    assert exc.stage == "output"


async def test_the_plain_paths_return_the_redacted_object(stub: StubServer, mode: str) -> None:
    c = instrument(client(mode, stub.url), stack=Stack([redactor()]))
    stub.add(Reply(body=completion("mail ann@example.org")))
    out = await done(c.chat.completions.parse(model=GPT, messages=MESSAGES))
    assert out.choices[0].message.content == "mail [REDACTED:email]"
    assert type(out).__name__.startswith("ParsedChatCompletion")


async def test_chat_stream_helper_guards_events_and_the_final_completion(
    stub: StubServer, mode: str
) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy, redactor()]))
    stub.add(chat_stream(MAIL))
    async with opened(c.chat.completions.stream(model=GPT, messages=MESSAGES)) as stream:
        events = await collect(stream)
        final = await done(stream.get_final_completion())
    text = "".join(e.delta for e in events if e.type == "content.delta")
    assert text == REDACTED
    assert final.choices[0].message.content == REDACTED
    (call,) = spy.calls
    assert (call.name, call.usage, call.usage_estimated) == (
        "chat.completions.stream",
        Usage(12, 7),
        False,
    )


async def test_leaving_a_stream_helper_early_settles_the_turn(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    stub.add(chat_stream(["a", "b", "c", "d"]))
    async with opened(c.chat.completions.stream(model=GPT, messages=MESSAGES)) as stream:
        first = await (anext(stream) if mode == "async" else done(next(stream)))
    assert first.type == "chunk"
    assert spy.calls[0].usage is not None  # settled when the helper closed its response


async def test_responses_stream_helper_guards_the_repeated_text(
    stub: StubServer, mode: str
) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy, redactor()]))
    stub.add(responses_stream(MAIL))
    async with opened(c.responses.stream(model=GPT, input="hi")) as stream:
        events = await collect(stream)
        final = await done(stream.get_final_response())
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REDACTED
    (done_event,) = [e for e in events if e.type == "response.output_text.done"]
    assert done_event.text == REDACTED
    assert final.output_text == REDACTED
    assert "example" not in repr(events)
    assert spy.calls[0].usage == Usage(50, 30, cache_read_tokens=10, reasoning_tokens=5)


async def test_streaming_response_of_a_streamed_create(stub: StubServer, mode: str) -> None:
    # The OpenAI Agents SDK's streamed runs: with_streaming_response.create(stream=True).
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy, redactor()]))
    stub.add(responses_stream(MAIL))
    method = c.responses.with_streaming_response.create
    async with opened(method(model=GPT, input="hi", stream=True)) as wrapper:
        assert type(wrapper).__name__ in ("APIResponse", "AsyncAPIResponse")
        stream = await parsed(wrapper)
        assert isinstance(stream, TurnStream if mode == "sync" else AsyncTurnStream)
        events = await collect(stream)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REDACTED
    assert events[-1].response.output_text == REDACTED
    assert spy.calls[0].usage == Usage(50, 30, cache_read_tokens=10, reasoning_tokens=5)
    assert len(stub.requests) == 1


async def test_raw_response_of_a_streamed_chat_create(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy, redactor()]))
    stub.add(chat_stream(MAIL))
    method = c.chat.completions.with_raw_response.create
    wrapper = await done(method(model=GPT, messages=MESSAGES, stream=True))
    assert type(wrapper).__name__ == "LegacyAPIResponse"
    chunks = await collect(await parsed(wrapper))
    assert "".join(ch.choices[0].delta.content for ch in chunks if ch.choices) == REDACTED
    assert spy.calls[0].usage == Usage(12, 7)


async def test_beta_responses_create_is_a_turn(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    stub.add(Reply(body=response_body()))
    await done(c.beta.responses.create(model=GPT, input="hi"))
    assert stub.requests[0][0] == "/v1/responses?beta=true"
    assert spy.calls[0].name == "beta.responses.create"
    assert spy.calls[0].usage == Usage(50, 30, cache_read_tokens=10, reasoning_tokens=5)


async def test_embeddings_are_priced_per_input_token(stub: StubServer, mode: str) -> None:
    spy = Spy()
    provider, exporter = spans()
    c = instrument(client(mode, stub.url), stack=Stack([Telemetry(tracer_provider=provider), spy]))
    stub.add(Reply(body=embedding_body(8)))
    out = await done(c.embeddings.create(model="text-embedding-3-small", input="hello"))
    assert len(out.data[0].embedding) == 3
    call = spy.calls[0]
    assert call.usage == Usage(8, 0)
    table = PricingTable()
    table.register("text-embedding-3-small", ModelPricing(Decimal("0.02"), 0))
    assert table.cost(call.model, call.usage) == Decimal("0.00000016")  # 8 x $0.02 / 1M
    (span,) = exporter.get_finished_spans()
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == 8


async def test_derived_clients_follow_the_latest_instrument(stub: StubServer, mode: str) -> None:
    first, second = Spy(), Spy()
    c = instrument(client(mode, stub.url), stack=Stack([first]))
    instrument(c, stack=Stack([second]))  # the last instrument wins, nothing nests
    derived = c.with_options(timeout=10)
    stub.add(Reply(body=completion()), Reply(body=completion()))
    await done(c.chat.completions.create(model=GPT, messages=MESSAGES))
    await done(
        derived.with_options(max_retries=0).chat.completions.create(model=GPT, messages=MESSAGES)
    )
    assert (len(first.calls), len(second.calls)) == (0, 2)


async def test_an_uncovered_model_call_warns_once_naming_the_method(
    stub: StubServer, mode: str
) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    image = {"created": 1, "data": [{"url": "https://x/y.png"}]}
    stub.add(Reply(body=image), Reply(body=image))
    with pytest.warns(UninstrumentedCallWarning, match=r"openai images\.generate\(\)"):
        await done(c.images.generate(prompt="a cat", model="dall-e-3"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await done(c.with_options(timeout=5).images.generate(prompt="a cat", model="dall-e-3"))
    assert spy.calls == []
    assert len(stub.requests) == 2


async def test_retry_with_sdk_retries_off_sends_one_request_per_attempt(
    stub: StubServer, mode: str
) -> None:
    clock = FakeClock()
    spy = Spy()
    retry = Retry(attempts=3, sleep=clock.sleep, asleep=clock.asleep)
    c = instrument(client(mode, stub.url), stack=Stack([retry, spy]))
    stub.add(
        error(500, "server_error", "boom", {"x-should-retry": "true", "retry-after": "2"}),
        error(409, "conflict", "busy", {"x-should-retry": "false"}),
    )
    method = c.chat.completions.with_raw_response.create
    exc = await failure_of(lambda: method(model=GPT, messages=MESSAGES))
    assert isinstance(exc, openai.APIStatusError)
    assert exc.status_code == 409  # x-should-retry: false stopped Retry
    assert clock.sleeps == [2.0]
    assert spy.attempts == [1, 2]
    assert len(stub.requests) == 2
