"""The MCP adapter against the real SDK: an in-process `MCPServer` over the SDK's memory
streams (`mcp.Client(server)`), every `call_tool` through the tool chain."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client, types
from mcp.server.mcpserver import MCPServer

from agentmw import Agent, Stack
from agentmw.errors import CircuitOpenError, PermissionDeniedError, ToolResultError
from agentmw.guardrails import DenyPatterns, PIIRedactor
from agentmw.integrations.mcp import instrument
from agentmw.middleware import (
    Checkpoint,
    CircuitBreaker,
    Guardrails,
    Limits,
    Permissions,
    Telemetry,
)
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.stores import InMemorySaver

from .sdk import spans


class Server:
    """An in-process MCP server whose tools count their calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        server = MCPServer("agentmw-test")

        @server.tool()
        def add(a: int, b: int) -> int:
            """Add two numbers."""
            self.calls.append("add")
            return a + b

        @server.tool()
        def lookup(name: str) -> str:
            """Look a person up."""
            self.calls.append("lookup")
            return f"{name} <{name.lower()}@example.com>"

        @server.tool()
        def delete_all() -> str:
            """Delete everything."""
            self.calls.append("delete_all")
            return "deleted"

        @server.tool()
        def broken() -> str:
            """Always fails on the server."""
            self.calls.append("broken")
            raise RuntimeError("server-side failure")

        self.mcp = server


@asynccontextmanager
async def connected() -> AsyncIterator[tuple[Server, Client]]:
    """A server and a client connected over the SDK's memory streams (one task enters and
    leaves it, as anyio's cancel scopes require)."""
    srv = Server()
    async with Client(srv.mcp) as client:
        yield srv, client


def text(result: Any) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_call_tool_runs_as_a_tool_in_the_current_session() -> None:
    async with connected() as (srv, client):
        session = instrument(client.session)
        assert session is client.session
        async with Agent("mcp-bot").session() as s:
            result = await session.call_tool("add", {"a": 2, "b": 3})
            via_client = await client.call_tool("add", {"a": 1, "b": 1})  # goes through the session
        assert text(result) == "5"
        assert text(via_client) == "2"
        assert result.structured_content == {"result": 5}
        assert srv.calls == ["add", "add"]
        assert s.tool_calls == 2
        assert s.iterations == 0
        assert [(e.name, e.tool) for e in s.events] == [
            ("agent.started", None),
            ("tool.called", "add"),
            ("tool.completed", "add"),
            ("tool.called", "add"),
            ("tool.completed", "add"),
            ("agent.completed", None),
        ]


POLICY = PermissionPolicy({"mcp-bot": RolePermissions(allow=("*",), deny=("delete_*",))})


async def test_permissions_by_tool_name_refuse_with_a_readable_result() -> None:
    async with connected() as (srv, client):
        session = instrument(client.session)
        async with Agent("mcp-bot", stack=[Permissions(POLICY)]).session() as s:
            result = await session.call_tool("delete_all", {})
            allowed = await session.call_tool("add", {"a": 1, "b": 2})
        assert result.is_error is True
        assert text(result) == (
            "agentmw refused this tool call: PermissionDeniedError: denied by pattern 'delete_*'"
        )
        assert text(allowed) == "3"
        assert srv.calls == ["add"]
        blocked = [e for e in s.events if e.name == "tool.blocked"]
        assert [(e.tool, e.data["kind"]) for e in blocked] == [("delete_all", "permission")]


async def test_on_refusal_raise_raises_the_agentmw_error() -> None:
    async with connected() as (srv, client):
        session = instrument(client.session, on_refusal="raise")
        async with Agent("mcp-bot", stack=[Permissions(POLICY)]).session():
            with pytest.raises(
                PermissionDeniedError, match="may not call tool 'delete_all'"
            ) as info:
                await session.call_tool("delete_all")
        assert info.value.tool == "delete_all"
        assert srv.calls == []


async def test_guardrails_check_arguments_and_results() -> None:
    async with connected() as (srv, client):
        session = instrument(client.session)
        guards = Guardrails([DenyPatterns([r"Mallory"], stages=("input",)), PIIRedactor()])
        async with Agent("mcp-bot", stack=[guards]).session() as s:
            refused = await session.call_tool("lookup", {"name": "Mallory"})
            redacted = await session.call_tool("lookup", {"name": "Alice"})
        assert refused.is_error is True
        assert text(refused).startswith(
            "agentmw refused this tool call: GuardrailViolation: arguments blocked by DenyPatterns"
        )
        assert text(redacted) == "Alice <[REDACTED:email]>"
        assert srv.calls == ["lookup"]
        replaced = [e for e in s.events if e.name == "guardrail.replaced"]
        assert [(e.tool, e.data["stage"]) for e in replaced] == [("lookup", "output")]


async def test_an_error_result_is_a_failed_call_and_is_returned() -> None:
    async with connected() as (_srv, client):
        session = instrument(client.session)
        async with Agent("mcp-bot").session() as s:
            result = await session.call_tool("broken", {})
        assert result.is_error is True
        assert text(result) == "Error executing tool broken"
        failed = [e for e in s.events if e.name == "tool.failed"]
        assert [e.failure_class for e in failed] == ["tool_error"]
        assert [(e.tool, e.detail) for e in failed] == [
            ("broken", f"agentmw.errors.{ToolResultError.__name__}")
        ]
        assert s.tool_calls == 1


async def test_an_open_circuit_raises_instead_of_calling() -> None:
    async with connected() as (srv, client):
        session = instrument(client.session)
        breaker = CircuitBreaker("mcp", failure_threshold=2, kinds="tool", counts=["tool_error"])
        async with Agent("mcp-bot", stack=[breaker]).session():
            for _ in range(2):
                assert (await session.call_tool("broken", {})).is_error
            with pytest.raises(CircuitOpenError):
                await session.call_tool("broken", {})
        assert srv.calls == ["broken", "broken"]


async def test_limits_refuse_past_max_tool_calls() -> None:
    async with connected() as (srv, client):
        session = instrument(client.session)
        async with Agent("mcp-bot", stack=[Limits(max_tool_calls=1)]).session():
            first = await session.call_tool("add", {"a": 1, "b": 1})
            second = await session.call_tool("add", {"a": 2, "b": 2})
        assert text(first) == "2"
        assert second.is_error is True
        assert text(second) == (
            "agentmw refused this tool call: LimitExceededError: max_tool_calls reached (limit 1)"
        )
        assert srv.calls == ["add"]


async def test_checkpoint_replays_a_tool_call_on_the_same_thread() -> None:
    async with connected() as (srv, client):
        session = instrument(client.session)
        agent = Agent("mcp-bot", stack=[Checkpoint(InMemorySaver())])
        async with agent.session("thread-1"):
            live = await session.call_tool("add", {"a": 20, "b": 22})
        async with agent.session("thread-1") as resumed:
            replayed = await session.call_tool("add", {"a": 20, "b": 22})
        assert srv.calls == ["add"]
        assert isinstance(replayed, types.CallToolResult)
        assert replayed.structured_content == live.structured_content == {"result": 42}
        assert text(replayed) == "42"
        assert "checkpoint.replayed" in [e.name for e in resumed.events]


async def test_telemetry_opens_an_execute_tool_span() -> None:
    async with connected() as (_srv, client):
        provider, exporter = spans()
        session = instrument(client.session, stack=Stack([Telemetry(tracer_provider=provider)]))
        await session.call_tool("add", {"a": 1, "b": 2})  # no agentmw session: the fixed stack
        (span,) = exporter.get_finished_spans()
        assert span.name == "execute_tool add"
        assert span.attributes["gen_ai.operation.name"] == "execute_tool"
        assert span.attributes["gen_ai.tool.name"] == "add"


async def test_instrumenting_again_replaces_the_settings() -> None:
    async with connected() as (_srv, client):
        instrument(client.session, on_refusal="raise")
        session = instrument(client.session)  # the last call wins; the wrappers never nest
        async with Agent("mcp-bot", stack=[Permissions(POLICY)]).session() as s:
            result = await session.call_tool("delete_all", {})
        assert result.is_error is True
        assert [e.name for e in s.events].count("tool.called") == 1


async def test_an_instrumented_client_runs_each_call_once() -> None:
    async with connected() as (_srv, client):
        assert instrument(client) is client
        async with Agent("mcp-bot").session() as s:
            result = await client.call_tool("add", {"a": 3, "b": 4})
        assert text(result) == "7"
        assert s.tool_calls == 1


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(TypeError, match="client_session must be an mcp ClientSession or Client"):
        instrument(object())
    with pytest.raises(ValueError, match="on_refusal"):
        instrument(Client(MCPServer("x")), on_refusal="ignore")
    with pytest.raises(TypeError, match="stack must be a Stack or None, got list"):
        instrument(Client(MCPServer("x")), stack=[])  # type: ignore[arg-type]


def test_without_the_sdk_the_import_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['mcp'] = None\n"
        "try:\n"
        "    import agentmw.integrations.mcp\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'agentmw[mcp]'" in proc.stdout
