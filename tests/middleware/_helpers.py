"""Run a turn or a tool the sync or the async way (the `mode` fixture)."""

from __future__ import annotations

from typing import Any

from agentmw import Session
from agentmw.testing import ScriptedModel


async def turn(mode: str, session: Session, fake: ScriptedModel, *args: Any, **kw: Any) -> Any:
    if mode == "sync":
        return session.run_turn(fake, *args, **kw)
    return await session.arun_turn(fake.acall, *args, **kw)


async def tool(mode: str, session: Session, fn: Any, *args: Any) -> Any:
    if mode == "sync":
        return session.run_tool("t", fn, *args)

    async def afn(*a: Any) -> Any:
        return fn(*a)

    return await session.arun_tool("t", afn, *args)
