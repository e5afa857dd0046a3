"""A session's event buffer: flat chunks that read back exactly the ring buffer's events.

The buffer copies a record's fields into flat lists of up to `_chunk` items and drops whole
chunks from the front, so a live session keeps no garbage-collected object per call. These
tests hold it to the agent's ring buffer (which keeps every record as it came) over random
mixes of calls, nested calls, unfinished starts and plain events, at capacities around the
chunk size, and check that the number of tracked objects stays flat over a long session.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmw import Agent, ModelPricing, Stack, Usage, agent_tool, agent_turn
from agentmw.core.session.event_log import EventLog
from agentmw.events import RingBufferEventSink
from agentmw.pricing import PricingTable

USAGE = Usage(input_tokens=10, output_tokens=2)
RATES = ModelPricing(input_per_million=1, output_per_million=2)
_ids = itertools.count()


def _agent(ring: int) -> Agent:
    table = PricingTable()
    table.register("buffer-model", RATES)
    return Agent("buffer", stack=Stack([]), pricing=table, event_sink=RingBufferEventSink(ring))


class _Driver:
    """Feeds an `EventLog` the records a session's runner gives it, for a scripted mix."""

    def __init__(self, log: EventLog, agent: Agent) -> None:
        self.log = log
        self.head = (log.session_id, agent.role, agent.project_id)
        self.step = 0

    def _start(self, name: str, subject: str, data: Any = None) -> tuple[Any, float]:
        self.step += 1
        at = time.time()
        if name == "turn.started":
            self.log.record((name, self.head, None, self.step, subject, at))
        else:
            self.log.record((name, self.head, None, self.step, subject, data, at))
        return self.step, at

    def _turn_end(self, step: int, at: float) -> None:
        record = ("turn.completed", self.head, None, step, "buffer-model", USAGE, 1, RATES, at)
        self.log.record_end((*record, time.time()), "turn.started")

    def _tool_end(self, step: int, at: float) -> None:
        data = {"tool_call_id": f"call-{step}"}  # both records carry it (`_tool_data`)
        record = ("tool.completed", self.head, None, step, "lookup", data, at, time.time())
        self.log.record_end(record, "tool.called")

    def run(self, op: str) -> None:
        if op == "turn":
            self._turn_end(*self._start("turn.started", "buffer-model"))
        elif op == "tool":
            step = self.step + 1
            self._tool_end(*self._start("tool.called", "lookup", {"tool_call_id": f"call-{step}"}))
        elif op == "turn_with_tool":
            turn = self._start("turn.started", "buffer-model")
            step = self.step + 1
            self._tool_end(*self._start("tool.called", "lookup", {"tool_call_id": f"call-{step}"}))
            self._turn_end(*turn)
        elif op == "unfinished":  # a start whose end never comes (the call was cancelled)
            self._start("turn.started", "buffer-model")
        else:
            self.log.emit("custom.event", detail=op)


OPS = st.sampled_from(["turn", "tool", "turn_with_tool", "unfinished", "emit"])


@settings(max_examples=150, deadline=None)
@given(capacity=st.sampled_from([0, 1, 3, 16, 17, 40, 129]), ops=st.lists(OPS, max_size=160))
def test_the_buffer_reads_back_the_ring_buffers_last_events(capacity: int, ops: list[str]) -> None:
    agent = _agent(ring=10_000)
    log = EventLog(f"buffer-{next(_ids)}", agent, capacity=capacity)
    driver = _Driver(log, agent)
    for op in ops:
        driver.run(op)
    sink = agent.event_sink
    assert isinstance(sink, RingBufferEventSink)
    everything = [e for e in sink.events if e.session_id == log.session_id]
    assert log.events == (everything[-capacity:] if capacity else [])
    kept = len(log.items())
    chunk = max(capacity // 8, 16)
    # At least `capacity` items once that many came (a joined record is one item for two
    # events), at most about an eighth more.
    assert kept <= max(capacity, 1) + 2 * chunk
    if capacity:
        assert len(log.events) == min(capacity, len(everything))
    counts = log.counts()
    assert sum(counts.values()) == len(everything)


@agent_tool
def lookup(q: str) -> str:
    return q


@agent_turn(model="buffer-model")
def turn() -> Usage:
    lookup("inside")
    return USAGE


@agent_turn(model="buffer-model")
async def aturn() -> Usage:
    await asyncio.sleep(0)
    return USAGE


def _tracked_growth(agent: Agent, turns: int, mode: str) -> int:
    def count() -> int:
        gc.collect()
        return len(gc.get_objects())

    if mode == "sync":
        with agent.session() as session:
            for _ in range(20):
                turn()
            before = count()
            for _ in range(turns):
                turn()
            after = count()
        assert session.iterations == turns + 20
        return after - before

    async def main() -> int:
        async with agent.session() as session:
            for _ in range(20):
                await aturn()
            before = count()
            for _ in range(turns):
                await aturn()
            after = count()
        assert session.iterations == turns + 20
        return after - before

    return asyncio.run(main())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_live_session_keeps_no_tracked_object_per_call(mode: str) -> None:
    # A small ring buffer, so what it keeps does not grow either: then only the session's
    # own buffer could, and it stores fields, not a tuple per call.
    growth = _tracked_growth(_agent(ring=8), 400, mode)
    assert growth < 40, f"{growth} tracked objects more after 400 turns"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_live_sessions_events_are_the_calls_in_order(mode: str) -> None:
    agent = _agent(ring=10_000)

    if mode == "sync":
        with agent.session() as session:
            for _ in range(300):  # past two chunks of the default 1,000-event buffer
                turn()
    else:

        async def main() -> Any:
            async with agent.session() as session:
                await asyncio.gather(*(aturn() for _ in range(300)))  # interleaved calls
            return session

        session = asyncio.run(main())
    sink = agent.event_sink
    assert isinstance(sink, RingBufferEventSink)
    mine = [e for e in sink.events if e.session_id == session.id]
    assert session.events == mine[-1000:]
    names = [e.name for e in session.events]
    assert names.count("turn.completed") == (300 if mode == "async" else 250)
