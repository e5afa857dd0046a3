"""Streamed spans read the whole stream: model, id and finish reason from whichever event."""

from __future__ import annotations

from typing import Any

import anthropic
import openai

from agentmw import Stack
from agentmw.integrations import instrument
from agentmw.middleware import Telemetry

from .payloads import CLAUDE, GPT, messages_stream
from .sdk import collect, done, spans
from .stub import Reply, StubServer
from .test_openai import MESSAGES, chunk


def _finish_then_usage() -> Reply:
    # include_usage: the finish reason comes on the last content chunk, then a chunk with
    # `choices: []` and the usage.
    last = chunk("!")
    last["choices"][0]["finish_reason"] = "stop"
    return Reply(events=[(None, chunk("hi")), (None, last),
                         (None, chunk(None, {"prompt_tokens": 3, "completion_tokens": 2})),
                         (None, "[DONE]")])  # fmt: skip


async def test_openai_chat_stream_keeps_the_finish_reason(stub: StubServer, mode: str) -> None:
    provider, exporter = spans()
    cls: Any = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
    c = instrument(cls(base_url=f"{stub.url}/v1", api_key="k", max_retries=0),
                   stack=Stack([Telemetry(tracer_provider=provider)]))  # fmt: skip
    stub.add(_finish_then_usage())
    await collect(
        await done(
            c.chat.completions.create(
                model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
    )
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span.attributes["gen_ai.response.model"] == GPT
    assert span.attributes["gen_ai.response.id"] == "chatcmpl-1"
    assert span.attributes["gen_ai.usage.output_tokens"] == 2


async def test_anthropic_stream_reads_message_start_and_delta(stub: StubServer, mode: str) -> None:
    provider, exporter = spans()
    cls: Any = anthropic.Anthropic if mode == "sync" else anthropic.AsyncAnthropic
    c = instrument(cls(base_url=stub.url, api_key="k", max_retries=0),
                   stack=Stack([Telemetry(tracer_provider=provider)]))  # fmt: skip
    stub.add(messages_stream(["a", "b"]))
    await collect(
        await done(c.messages.create(model=CLAUDE, max_tokens=8, messages=MESSAGES, stream=True))
    )
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert span.attributes["gen_ai.response.model"] == CLAUDE
    assert span.attributes["gen_ai.response.id"] == "msg_1"
    assert span.attributes["gen_ai.usage.output_tokens"] == 42
