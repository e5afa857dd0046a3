"""Concurrency: many async sessions and many threads share one agent without lost updates."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from agentmw import Agent, Call, Middleware, Usage, agent_tool, agent_turn
from agentmw.core import AgentRegistry
from agentmw.core.middleware import AsyncNext, Next


class Counter(Middleware):
    """Counts calls with a plain `+=` under a lock (what a real stateful layer would do)."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.count = 0

    def _bump(self) -> None:
        with self.lock:
            self.count += 1

    def handle(self, call: Call, call_next: Next) -> Any:
        self._bump()
        return call_next(call)

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        self._bump()
        return await call_next(call)


@agent_turn(model="m", usage=lambda r: Usage(2, 3))
async def aturn(x: int) -> int:
    await asyncio.sleep(0)
    return x


@agent_tool
async def atool(x: int) -> int:
    await asyncio.sleep(0)
    return -x


async def test_1000_concurrent_async_sessions() -> None:
    counter = Counter()
    registry = AgentRegistry(max_finished=2000)
    agent = Agent("worker", stack=[counter], registry=registry)

    async def one(i: int) -> tuple[int, int, Usage]:
        async with agent.session() as session:
            for _ in range(3):
                assert await aturn(i) == i
            assert await atool(i) == -i
        return session.iterations, session.tool_calls, session.usage

    results = await asyncio.gather(*(one(i) for i in range(1000)))
    assert all(r == (3, 1, Usage(6, 9)) for r in results)
    assert counter.count == 4000
    assert len(registry.finished()) == 1000
    assert registry.active() == []


def test_32_threads_sharing_one_agent_and_one_session() -> None:
    counter = Counter()
    agent = Agent("worker", stack=[counter])
    per_thread = 50
    barrier = threading.Barrier(32)

    @agent_turn(model="m", usage=lambda r: Usage(1, 1))
    def turn() -> None:
        return None

    errors: list[BaseException] = []
    shared = agent.session()

    def own_session() -> None:
        try:
            barrier.wait()
            with agent.session() as session:
                for _ in range(per_thread):
                    turn()
                    shared.run_turn(lambda: None, model="shared", usage=Usage(1, 0))
                    shared.run_tool("t", lambda: None)
            assert session.iterations == per_thread
        except BaseException as exc:
            errors.append(exc)

    with shared:
        threads = [threading.Thread(target=own_session) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert counter.count == 32 * per_thread * 3
    assert shared.iterations == 32 * per_thread
    assert shared.tool_calls == 32 * per_thread
    assert shared.usage == Usage(32 * per_thread, 0)
    assert shared.ledger.per_model()["shared"].calls == 32 * per_thread
    steps = [e.step for e in shared.events if e.name == "tool.called"]
    assert len(set(steps)) == len(steps)  # step numbers are never handed out twice
