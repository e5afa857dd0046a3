"""Usage extraction (OpenAI and Anthropic shapes), estimates, streamed usage fallback."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agentmw import Agent, Usage, agent_turn
from agentmw.testing import Chunk
from agentmw.usage import estimate_usage, extract_usage


def test_openai_chat_shape() -> None:
    response = {
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1000},
            "completion_tokens_details": {"reasoning_tokens": 120},
        }
    }
    assert extract_usage(response) == Usage(
        input_tokens=1200, output_tokens=300, cache_read_tokens=1000, reasoning_tokens=120
    )


def test_anthropic_shape_adds_cache_into_input() -> None:
    response = SimpleNamespace(
        usage=SimpleNamespace(
            input_tokens=50,
            output_tokens=20,
            cache_creation_input_tokens=200,
            cache_read_input_tokens=1000,
        )
    )
    assert extract_usage(response) == Usage(
        input_tokens=1250, output_tokens=20, cache_read_tokens=1000, cache_write_tokens=200
    )


def test_no_usage_is_none() -> None:
    assert extract_usage("text") is None
    assert extract_usage({"choices": []}) is None


def test_estimate_from_messages_and_max_tokens() -> None:
    messages = [{"role": "user", "content": "x" * 400}, {"role": "system", "content": "y" * 40}]
    assert estimate_usage((), {"messages": messages, "max_tokens": 256, "model": "m"}) == Usage(
        input_tokens=110, output_tokens=256
    )
    assert estimate_usage(("abcd" * 10,), {"max_output_tokens": 9}) == Usage(10, 9)


async def test_stream_takes_final_chunk_usage_else_estimates(mode: str) -> None:
    agent = Agent("s")

    if mode == "sync":

        @agent_turn(model="m")
        def reported(prompt: str) -> Any:
            yield Chunk("hello ")
            yield Chunk("world", Usage(7, 3))

        @agent_turn(model="m")
        def silent(prompt: str) -> Any:
            yield "a" * 40
            yield SimpleNamespace(
                choices=[SimpleNamespace(delta=SimpleNamespace(content="b" * 40))]
            )

        with agent.session() as s:
            list(reported("p" * 80))
            first = s.usage
            list(silent("p" * 80))
    else:

        @agent_turn(model="m")
        async def reported(prompt: str) -> Any:
            yield Chunk("hello ")
            yield Chunk("world", Usage(7, 3))

        @agent_turn(model="m")
        async def silent(prompt: str) -> Any:
            yield "a" * 40
            yield {"delta": {"text": "b" * 40}}

        async with agent.session() as s:
            [c async for c in reported("p" * 80)]
            first = s.usage
            [c async for c in silent("p" * 80)]
    assert first == Usage(7, 3)
    # The silent stream: 80 prompt chars / 4 in, 80 streamed chars / 4 out.
    assert s.usage == Usage(7 + 20, 3 + 20)
