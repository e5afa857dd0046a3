"""The OpenAI SDK under `instrument()`: usage, errors, Retry-After, rate limits, streams, tools."""

from __future__ import annotations

import warnings
from typing import Any

import openai
import pytest

from agentmw import Agent, GuardrailViolation, Stack, Usage, agent_tool
from agentmw.classify import FailureScenario, classify_exception
from agentmw.guardrails import PIIRedactor
from agentmw.integrations import AsyncTurnStream, TurnStream, instrument
from agentmw.integrations.openai import provider_name
from agentmw.middleware import Guardrails, RateLimit, Retry
from agentmw.testing import FakeClock, capture_events

from .sdk import Spy, collect, done, failure_of
from .stub import Reply, StubServer, closed_port

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "hi"}]


def client(mode: str, base: str, **options: Any) -> Any:
    options.setdefault("max_retries", 0)
    cls = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
    return cls(base_url=f"{base}/v1", api_key="sk-test", **options)


def completion(
    content: str | None = "hello", tool_calls: Any = None, **usage: Any
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 40},
            "completion_tokens_details": {"reasoning_tokens": 8},
        },
    }


RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "model": MODEL,
    "status": "completed",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "from responses", "annotations": []}],
        },
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 10},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 80,
    },
}


def chunk(content: str | None = None, usage: Any = None) -> dict[str, Any]:
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": choices,
        "usage": usage,
    }


def chat_stream(parts: list[str], *, usage: bool = True) -> Reply:
    events: list[tuple[str | None, Any]] = [(None, chunk(p)) for p in parts]
    if usage:
        events.append((None, chunk(None, {"prompt_tokens": 12, "completion_tokens": 7})))
    events.append((None, "[DONE]"))
    return Reply(events=events)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"error": {"message": message, "type": code, "code": code, "param": None}}
    return Reply(status, body, headers or {})


# -- usage and text ---------------------------------------------------------------------------
async def test_chat_completion_usage_text_and_provider(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    stub.add(Reply(body=completion()))
    result = await done(c.chat.completions.create(model=MODEL, messages=MESSAGES))
    assert isinstance(result, openai.types.chat.ChatCompletion)
    assert result.choices[0].message.content == "hello"
    (call,) = spy.calls
    assert call.usage == Usage(100, 20, cache_read_tokens=40, reasoning_tokens=8)
    assert call.provider == "openai"
    assert call.model == MODEL
    assert call.name == "chat.completions.create"
    assert stub.requests[0][0] == "/v1/chat/completions"


async def test_responses_usage_and_output_text(stub: StubServer, mode: str) -> None:
    spy = Spy()
    guard = Guardrails([PIIRedactor(["email"])])
    c = instrument(client(mode, stub.url), stack=Stack([spy, guard]))
    body = {**RESPONSE, "output": [dict(RESPONSE["output"][0]), dict(RESPONSE["output"][1])]}
    body["output"][1]["content"] = [
        {"type": "output_text", "text": "write to ann@example.com", "annotations": []}
    ]
    stub.add(Reply(body=body))
    result = await done(c.responses.create(model=MODEL, input="hi"))
    assert result.output_text == "write to [REDACTED:email]"
    assert spy.calls[0].usage == Usage(50, 30, cache_read_tokens=10, reasoning_tokens=5)
    assert spy.calls[0].name == "responses.create"


async def test_responses_stream_usage_from_completed_event(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    delta = {
        "type": "response.output_text.delta",
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "streamed",
        "sequence_number": 1,
        "logprobs": [],
    }
    completed = {"type": "response.completed", "response": RESPONSE, "sequence_number": 2}
    stub.add(
        Reply(events=[("response.output_text.delta", delta), ("response.completed", completed)])
    )
    stream = await done(c.responses.create(model=MODEL, input="hi", stream=True))
    events = await collect(stream)
    assert [e.type for e in events] == ["response.output_text.delta", "response.completed"]
    assert spy.calls[0].usage == Usage(50, 30, cache_read_tokens=10, reasoning_tokens=5)
    assert spy.calls[0].usage_estimated is False


async def test_stream_usage_from_the_include_usage_chunk(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    stub.add(chat_stream(["Hel", "lo"]))
    stream = await done(
        c.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert isinstance(stream, TurnStream if mode == "sync" else AsyncTurnStream)
    chunks = await collect(stream)
    assert "".join(ch.choices[0].delta.content for ch in chunks if ch.choices) == "Hello"
    assert spy.calls[0].usage == Usage(12, 7)
    assert spy.calls[0].usage_estimated is False


async def test_stream_without_usage_is_estimated_and_marked(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    stub.add(chat_stream(["12345678"], usage=False))
    await collect(
        await done(c.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    )
    assert spy.calls[0].usage_estimated is True
    assert spy.calls[0].usage == Usage(1, 2)  # "hi" -> 1 token in, 8 characters -> 2 out


async def test_closing_a_stream_early_closes_the_turn(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]))
    stub.add(chat_stream(["a", "b", "c"]))
    stream = await done(c.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    if mode == "sync":
        with stream:
            first = next(stream)
    else:
        async with stream:
            first = await anext(stream)
    assert first.choices[0].delta.content == "a"
    assert spy.calls[0].usage is not None  # settled in `finally` (estimated)


# -- streaming through guardrails -------------------------------------------------------------
async def test_stream_redacts_pii_split_across_sse_chunks(stub: StubServer, mode: str) -> None:
    c = instrument(
        client(mode, stub.url),
        stack=Stack([Guardrails([PIIRedactor(["email"])], stream_window=32)]),
    )
    stub.add(chat_stream(["mail bo", "b@exam", "ple.com now", " please"]))
    stream = await done(c.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    chunks = await collect(stream)
    text = "".join(ch.choices[0].delta.content for ch in chunks if ch.choices)
    assert text == "mail [REDACTED:email] now please"
    assert chunks[-1].usage is not None  # the usage chunk still reaches the consumer


async def test_stream_block_raises_before_the_text_is_yielded(stub: StubServer, mode: str) -> None:
    guard = Guardrails([PIIRedactor(["email"], strategy="block")], stream_window="full")
    c = instrument(client(mode, stub.url), stack=Stack([guard]))
    stub.add(chat_stream(["mail bo", "b@exam", "ple.com"]))
    exc = await failure_of(
        lambda: c.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    )  # the first chunk is fetched inside create(), so the block raises there
    assert isinstance(exc, GuardrailViolation)


# -- errors from the SDK's own exception classes ----------------------------------------------
ERRORS = [
    (error(429, "rate_limit_exceeded", "Rate limit reached", {"retry-after-ms": "250"}),
     openai.RateLimitError, FailureScenario.RATE_LIMITED, True, 0.25),
    (error(429, "insufficient_quota", "You exceeded your current quota"),
     openai.RateLimitError, FailureScenario.QUOTA_EXHAUSTED, False, None),
    (error(500, "server_error", "boom", {"retry-after": "3"}),
     openai.InternalServerError, FailureScenario.SERVER_ERROR, True, 3.0),
    (error(503, "overloaded", "Service unavailable"),
     openai.InternalServerError, FailureScenario.OVERLOADED, True, None),
    (error(400, "context_length_exceeded", "This model's maximum context length is 128000"),
     openai.BadRequestError, FailureScenario.CONTEXT_OVERFLOW, False, None),
    (error(400, "content_filter", "The response was filtered"),
     openai.BadRequestError, FailureScenario.CONTENT_FILTERED, False, None),
    (error(401, "invalid_api_key", "Incorrect API key provided"),
     openai.AuthenticationError, FailureScenario.AUTH, False, None),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "cls", "scenario", "retryable", "after"), ERRORS)
async def test_sdk_errors_are_classified(
    stub: StubServer, mode: str, reply: Reply, cls: type, scenario: Any, retryable: bool,
    after: float | None,
) -> None:  # fmt: skip
    c = instrument(client(mode, stub.url), stack=Stack())
    stub.add(reply)
    exc = await failure_of(lambda: c.chat.completions.create(model=MODEL, messages=MESSAGES))
    assert type(exc) is cls
    failure = classify_exception(exc)
    assert (failure.scenario, failure.retryable, failure.retry_after) == (
        scenario, retryable, after,
    )  # fmt: skip


async def test_connection_and_timeout_errors_are_classified(stub: StubServer, mode: str) -> None:
    down = instrument(client(mode, closed_port()), stack=Stack())
    exc = await failure_of(lambda: down.chat.completions.create(model=MODEL, messages=MESSAGES))
    assert type(exc) is openai.APIConnectionError
    assert classify_exception(exc).scenario is FailureScenario.CONNECTION
    slow = instrument(client(mode, stub.url, timeout=0.05), stack=Stack())
    stub.add(Reply(body=completion(), delay=0.5))
    exc = await failure_of(lambda: slow.chat.completions.create(model=MODEL, messages=MESSAGES))
    assert type(exc) is openai.APITimeoutError
    assert classify_exception(exc).scenario is FailureScenario.TIMEOUT


# -- Retry and RateLimit on real 429s -----------------------------------------------------------
async def test_retry_waits_retry_after_ms(stub: StubServer, mode: str) -> None:
    clock = FakeClock()
    retry = Retry(attempts=3, sleep=clock.sleep, asleep=clock.asleep)
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([retry, spy]))
    stub.add(
        error(429, "rate_limit_exceeded", "slow down", {"retry-after-ms": "1500"}),
        error(503, "overloaded", "busy", {"retry-after-ms": "20"}),
        Reply(body=completion()),
    )
    result = await done(c.chat.completions.create(model=MODEL, messages=MESSAGES))
    assert result.choices[0].message.content == "hello"
    assert clock.sleeps == [1.5, 0.02]
    assert spy.attempts == [1, 2, 3]
    assert len(stub.requests) == 3  # max_retries=0: the SDK itself never retried


async def test_a_429_feeds_the_rate_limiter_cooldown(stub: StubServer, mode: str) -> None:
    clock = FakeClock(100.0)
    limiter = RateLimit(rpm=600, clock=clock)
    c = instrument(client(mode, stub.url), stack=Stack([limiter]))
    stub.add(error(429, "rate_limit_exceeded", "slow down", {"retry-after": "7"}))
    with capture_events() as events:
        exc = await failure_of(lambda: c.chat.completions.create(model=MODEL, messages=MESSAGES))
    assert isinstance(exc, openai.RateLimitError)
    (cooldown,) = events.named("rate_limit.cooldown")
    assert cooldown.data["seconds"] == 7.0


# -- instrument() itself -----------------------------------------------------------------------
async def test_instrument_is_idempotent_and_in_place(stub: StubServer, mode: str) -> None:
    spy = Spy()
    raw = client(mode, stub.url)
    assert instrument(raw, stack=Stack()) is raw
    assert instrument(raw, stack=Stack([spy])) is raw  # re-wraps the SDK method, never nests
    stub.add(Reply(body=completion()))
    await done(raw.chat.completions.create(model=MODEL, messages=MESSAGES))
    assert len(spy.calls) == 1


async def test_warns_once_when_sdk_retries_under_retry(stub: StubServer, mode: str) -> None:
    c = instrument(client(mode, stub.url, max_retries=2), stack=Stack([Retry(attempts=1)]))
    stub.add(Reply(body=completion()), Reply(body=completion()))
    with pytest.warns(RuntimeWarning, match="max_retries=0"):
        await done(c.chat.completions.create(model=MODEL, messages=MESSAGES))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await done(c.chat.completions.create(model=MODEL, messages=MESSAGES))


async def test_no_warning_without_retry_layer(stub: StubServer, mode: str) -> None:
    c = instrument(client(mode, stub.url, max_retries=2), stack=Stack())
    stub.add(Reply(body=completion()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await done(c.chat.completions.create(model=MODEL, messages=MESSAGES))


async def test_model_from_kwargs_false_leaves_the_model_unset(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(mode, stub.url), stack=Stack([spy]), model_from_kwargs=False)
    stub.add(Reply(body=completion()))
    await done(c.chat.completions.create(model=MODEL, messages=MESSAGES))
    assert spy.calls[0].model is None
    assert stub.requests[0][1]["model"] == MODEL


def test_provider_names() -> None:
    assert provider_name(openai.OpenAI(api_key="k")) == "openai"
    azure = openai.AzureOpenAI(
        api_key="k", api_version="2024-10-21", azure_endpoint="https://res.openai.azure.com"
    )
    assert provider_name(azure) == "azure.ai.openai"
    by_url = openai.OpenAI(api_key="k", base_url="https://res.openai.azure.com/openai/v1")
    assert provider_name(by_url) == "azure.ai.openai"


def test_instrument_rejects_foreign_clients() -> None:
    with pytest.raises(TypeError, match="agent_turn"):
        instrument(object())


# -- a multi-turn tool loop in the OpenAI tools format ----------------------------------------
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


async def test_tool_use_loop(stub: StubServer, mode: str) -> None:
    import json

    tool_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})},
    }
    stub.add(
        Reply(body=completion(None, [tool_call], prompt_tokens=30, completion_tokens=10)),
        Reply(body=completion("It is sunny in Oslo.", prompt_tokens=50, completion_tokens=6)),
    )

    @agent_tool
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    agent = Agent("weather", stack=Stack([Spy()]))
    c = instrument(client(mode, stub.url))  # the session's stack applies
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    with agent.session() as session:
        while True:
            reply = await done(
                c.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
            )
            message = reply.choices[0].message
            if not message.tool_calls:
                break
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                result = get_weather(**json.loads(call.function.arguments))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    assert message.content == "It is sunny in Oslo."
    assert session.tool_calls == 1
    assert session.ledger.usage == Usage(80, 16)
    sent = stub.requests[1][1]["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny in Oslo"}
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_sdk_streams_under_checkpoint_run_live_and_keep_their_chunk_types(
    stub: StubServer, mode: str
) -> None:
    # SDK chunks are live objects the SDK's stream wrapper hands on: Checkpoint neither stores
    # nor replays them, so a resumed thread streams again (and non-streamed turns replay).
    from agentmw.middleware import Checkpoint
    from agentmw.stores import InMemorySaver

    saver = InMemorySaver()
    agent = Agent("w", stack=[Checkpoint(saver)])
    c = instrument(client(mode, stub.url))
    texts = []
    for _ in range(2):
        stub.add(chat_stream(["Hel", "lo"]))
        async with agent.session(thread_id="sdk"):
            stream = await done(
                c.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            )
            chunks = await collect(stream)
        assert all(isinstance(ch, openai.types.chat.ChatCompletionChunk) for ch in chunks)
        texts.append("".join(ch.choices[0].delta.content for ch in chunks if ch.choices))
    assert texts == ["Hello", "Hello"]
    assert len(stub.requests) == 2  # streamed live both times
    assert saver.get_steps("sdk") == []  # nothing stored for a live stream
