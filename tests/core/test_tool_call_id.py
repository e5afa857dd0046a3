"""A tool call's provider id: given at call time, consumed by agentmw, reported everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from agentmw import Agent, Stack, agent_tool
from agentmw.middleware import Telemetry
from agentmw.testing import capture_events

from ..integrations.sdk import done, spans


def _tool(mode: str) -> Any:
    if mode == "sync":

        def lookup(city: str, **extra: Any) -> str:
            assert "tool_call_id" not in extra  # never passed to the function
            return f"sunny in {city}"

        return lookup

    async def alookup(city: str, **extra: Any) -> str:
        assert "tool_call_id" not in extra
        return f"sunny in {city}"

    return alookup


async def test_a_decorated_tool_takes_tool_call_id(mode: str) -> None:
    provider, exporter = spans()
    tool = agent_tool(stack=Stack([Telemetry(tracer_provider=provider)]))(_tool(mode))
    assert await done(tool("Oslo", tool_call_id="call_abc")) == "sunny in Oslo"
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.tool.call.id"] == "call_abc"


async def test_run_tool_takes_tool_call_id_into_the_events(mode: str) -> None:
    provider, exporter = spans()
    agent = Agent("writer", stack=Stack([Telemetry(tracer_provider=provider)]))
    with capture_events() as events:
        async with agent.session() as session:
            if mode == "sync":
                out = session.run_tool("lookup", _tool(mode), "Oslo", tool_call_id="call_1")
            else:
                out = await session.arun_tool("lookup", _tool(mode), "Oslo", tool_call_id="call_1")
            await done(agent_tool(_tool(mode))("Rome", tool_call_id="call_2"))
    assert out == "sunny in Oslo"
    called = [e.data.get("tool_call_id") for e in events.named("tool.called")]
    completed = [e.data.get("tool_call_id") for e in events.named("tool.completed")]
    assert called == completed == ["call_1", "call_2"]
    ids = [s.attributes.get("gen_ai.tool.call.id") for s in exporter.get_finished_spans()]
    assert "call_1" in ids


async def test_a_failed_tool_reports_its_id(mode: str) -> None:
    def broken(**_: Any) -> None:
        raise KeyError("x")

    agent = Agent("writer", stack=Stack())

    async def run() -> None:
        async with agent.session() as session:
            if mode == "sync":
                session.run_tool("broken", broken, tool_call_id="call_9")
            else:
                await session.arun_tool("broken", broken, tool_call_id="call_9")

    with capture_events() as events, pytest.raises(KeyError):
        await run()
    (failed,) = events.named("tool.failed")
    assert failed.data["tool_call_id"] == "call_9"


@pytest.mark.parametrize(("value", "error"), [(42, TypeError), ("  ", ValueError)])
def test_a_bad_tool_call_id_is_refused(value: Any, error: type[Exception]) -> None:
    tool: Any = agent_tool(lambda: None)
    with pytest.raises(error, match="tool_call_id"):
        tool(tool_call_id=value)
