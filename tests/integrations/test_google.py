"""The google-genai SDK under `instrument()`: usage, streams, guardrails, errors, Retry, names."""

from __future__ import annotations

import warnings
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors
from google.genai.types import HttpOptions

from agentmw import Stack, Usage
from agentmw.classify import FailureScenario, classify_exception
from agentmw.errors import UninstrumentedCallWarning
from agentmw.guardrails import PIIRedactor
from agentmw.integrations import instrument
from agentmw.integrations.google import provider_name
from agentmw.middleware import Guardrails, Retry, Telemetry
from agentmw.testing import FakeClock

from .payloads import GEMINI, GEMINI_USAGE, gemini_body, gemini_error, gemini_stream
from .sdk import Spy, collect, done, failure_of, spans
from .stub import Reply, StubServer

USAGE = Usage(40, 18, cache_read_tokens=16, reasoning_tokens=6)


_HTTP = httpx2.Client()  # shared: a client's own pool costs a TLS context to build


def client(base: str) -> Any:
    options = HttpOptions(base_url=base, api_version="v1beta", httpx_client=_HTTP)
    return genai.Client(api_key="g-test", http_options=options)


def models(c: Any, mode: str) -> Any:
    return c.models if mode == "sync" else c.aio.models


async def test_generate_content_usage_provider_and_model(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(stub.url), stack=Stack([spy]))
    stub.add(Reply(body=gemini_body("hello", GEMINI_USAGE)))
    out = await done(models(c, mode).generate_content(model=GEMINI, contents="hi"))
    assert out.text == "hello"
    (call,) = spy.calls
    assert call.usage == USAGE  # thoughts are billed as output and reported as reasoning
    assert (call.name, call.model, call.provider) == (
        "models.generate_content",
        GEMINI,
        "gcp.gemini",
    )
    assert stub.requests[0][0] == f"/v1beta/models/{GEMINI}:generateContent"


async def test_chats_go_through_the_same_gate(stub: StubServer, mode: str) -> None:
    spy = Spy()
    c = instrument(client(stub.url), stack=Stack([spy]))
    stub.add(Reply(body=gemini_body("hello", GEMINI_USAGE)))
    chats = c.chats if mode == "sync" else c.aio.chats
    chat = chats.create(model=GEMINI)
    out = await done(chat.send_message("hi"))
    assert out.text == "hello"
    assert [call.usage for call in spy.calls] == [USAGE]


async def test_stream_usage_and_redaction_across_chunks(stub: StubServer, mode: str) -> None:
    spy = Spy()
    guard = Guardrails([PIIRedactor(["email"])], stream_window=32)
    c = instrument(client(stub.url), stack=Stack([spy, guard]))
    stub.add(gemini_stream(["write to ann@ex", "ample.org", " today"]))
    chunks = await collect(
        await done(models(c, mode).generate_content_stream(model=GEMINI, contents="hi"))
    )
    assert "".join(ch.text for ch in chunks if ch.text) == "write to [REDACTED:email] today"
    (call,) = spy.calls
    assert call.name == "models.generate_content_stream"
    assert call.usage == USAGE
    assert call.usage_estimated is False
    assert len(stub.requests) == 1


async def test_output_is_redacted_in_a_copy(stub: StubServer, mode: str) -> None:
    c = instrument(client(stub.url), stack=Stack([Guardrails([PIIRedactor(["email"])])]))
    stub.add(Reply(body=gemini_body("mail ann@example.org")))
    out = await done(models(c, mode).generate_content(model=GEMINI, contents="hi"))
    assert out.text == "mail [REDACTED:email]"


ERRORS = [
    (gemini_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", retry_after="7"),
     FailureScenario.RATE_LIMITED, True, 7.0),
    (gemini_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", retry_delay="30s"),
     FailureScenario.RATE_LIMITED, True, 30.0),
    (gemini_error(500, "INTERNAL", "An internal error has occurred"),
     FailureScenario.SERVER_ERROR, True, None),
    (gemini_error(503, "UNAVAILABLE", "The model is overloaded"),
     FailureScenario.OVERLOADED, True, None),
    (gemini_error(400, "INVALID_ARGUMENT",
                  "The input token count (1200000) exceeds the maximum number of tokens allowed"),
     FailureScenario.CONTEXT_OVERFLOW, False, None),
    (gemini_error(403, "PERMISSION_DENIED", "API key not valid"),
     FailureScenario.AUTH, False, None),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "scenario", "retryable", "after"), ERRORS)
async def test_api_errors_are_classified(
    stub: StubServer, mode: str, reply: Reply, scenario: Any, retryable: bool,
    after: float | None,
) -> None:  # fmt: skip
    c = instrument(client(stub.url), stack=Stack())
    stub.add(reply)
    exc = await failure_of(lambda: models(c, mode).generate_content(model=GEMINI, contents="hi"))
    assert isinstance(exc, errors.APIError)
    assert exc.code == reply.status
    failure = classify_exception(exc)
    assert (failure.scenario, failure.retryable, failure.retry_after, failure.status_code) == (
        scenario, retryable, after, reply.status,
    )  # fmt: skip


async def test_retry_waits_the_retry_after_and_sends_once_per_attempt(
    stub: StubServer, mode: str
) -> None:
    clock = FakeClock()
    spy = Spy()
    c = instrument(
        client(stub.url),
        stack=Stack([Retry(attempts=3, sleep=clock.sleep, asleep=clock.asleep), spy]),
    )
    stub.add(
        gemini_error(429, "RESOURCE_EXHAUSTED", "slow down", retry_after="2"),
        gemini_error(503, "UNAVAILABLE", "busy", retry_delay="0.5s"),
        Reply(body=gemini_body("ok", GEMINI_USAGE)),
    )
    out = await done(models(c, mode).generate_content(model=GEMINI, contents="hi"))
    assert out.text == "ok"
    assert clock.sleeps == [2.0, 0.5]
    assert spy.attempts == [1, 2, 3]
    assert len(stub.requests) == 3


async def test_stream_telemetry_reads_model_id_and_finish_reason(
    stub: StubServer, mode: str
) -> None:
    provider, exporter = spans()
    c = instrument(client(stub.url), stack=Stack([Telemetry(tracer_provider=provider)]))
    stub.add(gemini_stream(["a", "b"]))
    await collect(await done(models(c, mode).generate_content_stream(model=GEMINI, contents="hi")))
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes
    assert attrs["gen_ai.provider.name"] == "gcp.gemini"
    assert attrs["gen_ai.response.model"] == GEMINI
    assert attrs["gen_ai.response.id"] == "resp-gemini-1"
    assert attrs["gen_ai.response.finish_reasons"] == ("STOP",)
    assert attrs["gen_ai.usage.input_tokens"] == 40


async def test_uncovered_model_calls_warn_once(stub: StubServer, mode: str) -> None:
    c = instrument(client(stub.url), stack=Stack())
    body = {"embeddings": [{"values": [0.1, 0.2]}]}
    stub.add(Reply(body=body), Reply(body=body))
    name = "models.embed_content" if mode == "sync" else "aio.models.embed_content"
    with pytest.warns(UninstrumentedCallWarning, match=name.replace(".", r"\.")):
        await done(models(c, mode).embed_content(model="text-embedding-004", contents="hi"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await done(models(c, mode).embed_content(model="text-embedding-004", contents="hi"))


def test_instrument_is_idempotent_and_the_last_stack_wins(stub: StubServer) -> None:
    first, second = Spy(), Spy()
    c = instrument(client(stub.url), stack=Stack([first]))
    assert instrument(c, stack=Stack([second])) is c
    stub.add(Reply(body=gemini_body()))
    c.models.generate_content(model=GEMINI, contents="hi")
    assert (len(first.calls), len(second.calls)) == (0, 1)


def test_provider_names() -> None:
    assert provider_name(genai.Client(api_key="k")) == "gcp.gemini"
    vertex = genai.Client(vertexai=True, api_key="k")
    assert provider_name(vertex) == "gcp.vertex_ai"
