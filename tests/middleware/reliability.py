"""Helpers for the reliability layer tests: run one turn or tool through a stack, sync or async."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from agentmw import Agent, Middleware, Session
from agentmw.testing import ScriptedModel


def run_turn(
    mode: str, layers: Iterable[Middleware], scripted: ScriptedModel, **kwargs: Any
) -> tuple[Any, Session]:
    """Run one turn of `scripted` through `layers`; returns (result or exception, session)."""
    agent = Agent("tester", stack=list(layers))
    if mode == "sync":
        with agent.session() as session:
            try:
                result, _ = session.run_turn(scripted, **kwargs)
            except Exception as exc:
                result = exc
        return result, session

    async def body() -> tuple[Any, Session]:
        async with agent.session() as session:
            try:
                result, _ = await session.arun_turn(scripted.acall, **kwargs)
            except Exception as exc:
                result = exc
        return result, session

    return asyncio.run(body())


def run_tool(
    mode: str, layers: Iterable[Middleware], name: str, fn: Any, afn: Any
) -> tuple[Any, Session]:
    agent = Agent("tester", stack=list(layers))
    if mode == "sync":
        with agent.session() as session:
            try:
                result = session.run_tool(name, fn)
            except Exception as exc:
                result = exc
        return result, session

    async def body() -> tuple[Any, Session]:
        async with agent.session() as session:
            try:
                result = await session.arun_tool(name, afn)
            except Exception as exc:
                result = exc
        return result, session

    return asyncio.run(body())
