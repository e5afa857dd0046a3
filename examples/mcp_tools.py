"""MCP tool calls through an agentmw stack: an in-process MCP server, the SDK's real client.

`instrument(client.session)` runs every `call_tool` as an agentmw tool call: the role may
not call `delete_*` tools, e-mail addresses in results are redacted, a `Checkpoint` replays a
resumed thread's calls instead of calling the server again, and the session's events record
each call. Runs offline: `python examples/mcp_tools.py`.
"""

from __future__ import annotations

import asyncio

from mcp import Client, types
from mcp.server.mcpserver import MCPServer

from agentmw import Agent, Stack
from agentmw.guardrails import PIIRedactor
from agentmw.integrations.mcp import instrument
from agentmw.middleware import Checkpoint, Guardrails, Permissions
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.stores import InMemorySaver

server = MCPServer("crm")
served: list[str] = []


@server.tool()
def find_customer(name: str) -> str:
    """Find a customer by name."""
    served.append("find_customer")
    return f"{name}: premium plan, contact {name.lower()}@example.com"


@server.tool()
def delete_customer(name: str) -> str:
    """Delete a customer."""
    served.append("delete_customer")
    return f"deleted {name}"


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def main() -> None:
    policy = PermissionPolicy({"crm-bot": RolePermissions(allow=("*",), deny=("delete_*",))})
    bot = Agent(
        "crm-bot",
        stack=Stack(
            [Checkpoint(InMemorySaver()), Permissions(policy), Guardrails([PIIRedactor()])]
        ),
    )
    async with Client(server) as client:
        session = instrument(client.session)
        async with bot.session("ticket-42") as run:
            found = await session.call_tool("find_customer", {"name": "Ada"})
            refused = await session.call_tool("delete_customer", {"name": "Ada"})
        print("find_customer:", text(found))
        print(f"delete_customer (is_error={refused.is_error}):", text(refused))
        print("events:", [e.name for e in run.events])

        # The same thread again (a resumed run): the call is replayed, the server not called.
        async with bot.session("ticket-42") as resumed:
            again = await session.call_tool("find_customer", {"name": "Ada"})
        replayed = [e.name for e in resumed.events if e.name.startswith("checkpoint.")]
        print("resumed:", text(again), replayed)
    print("server calls:", served)


asyncio.run(main())
