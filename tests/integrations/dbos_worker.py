"""A DBOS worker process for tests/integrations/test_dbos.py (run with `python -m`).

    python -m tests.integrations.dbos_worker ROLE DB_URL WORKDIR WORKFLOW_ID

ROLE "crash" starts the agent workflow twice, sync (WORKFLOW_ID-sync) and async
(WORKFLOW_ID-async), and both hang in tool 3 (the test SIGKILLs the process there);
"recover" launches DBOS on the same system database (which recovers the killed workflows),
waits for them, then runs each workflow cleanly under <its id>-clean and prints the results as
JSON; "queue" runs, sync then async, 6 workflows whose turns go through a model queue capped
at 2 (and 6 on a model without a queue) and prints the most turns seen in flight. One process
serves both modes to keep the test short. Every real execution of a turn or tool appends a
line to WORKDIR/<workflow id>.log.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from agentmw import Agent, Stack, Usage, agent_turn, current_call
from agentmw.errors import BudgetExceededError, LimitExceededError
from agentmw.integrations.dbos import DBOSStep, model_queue, workflow_session
from agentmw.middleware import Budget, Limits
from agentmw.pricing import register_pricing

MODEL = "dbos-test-model"
# $1 per million tokens in and out: a turn of 1000 + 500 tokens costs $0.0015.
for _model in (MODEL, "dbos-queued-model", "dbos-free-model"):
    register_pricing(_model, {"input_per_million": 1, "output_per_million": 1})
TURN_USAGE = Usage(input_tokens=1000, output_tokens=500)
# Five turns spend $0.0075 > $0.007: the sixth is refused. Limits refuses the fifth tool.
STACK = Stack(
    [
        DBOSStep(),
        Budget(Decimal("0.007"), enforce=True, precheck=False),
        Limits(max_tool_calls=4),
    ]
)
AGENT = Agent("dbos-worker", stack=STACK)
CRASH_AT_TOOL = 3

WORKDIR = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(".")
ROLE = sys.argv[1] if len(sys.argv) > 1 else ""


def _log(line: str) -> None:
    with open(WORKDIR / f"{DBOS.workflow_id}.log", "a") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def _hang_here(n: int) -> bool:
    return ROLE == "crash" and n == CRASH_AT_TOOL


def model_turn(n: int) -> dict[str, Any]:
    _log(f"turn {n}")
    return {"text": f"answer {n}", "usage": TURN_USAGE}


def _key() -> str:
    call = current_call()
    assert call is not None
    assert call.idempotency_key is not None
    return call.idempotency_key


def _log_key(n: int, key: str) -> None:
    with open(WORKDIR / f"{DBOS.workflow_id}.keys", "a") as out:
        out.write(f"{n} {key}\n")


def lookup(n: int) -> str:
    _log_key(n, _key())
    _log(f"tool {n}")
    if _hang_here(n):
        _log("hanging")
        time.sleep(120)
    return f"fact {n}"


async def amodel_turn(n: int) -> dict[str, Any]:
    await asyncio.sleep(0)
    return model_turn(n)


async def alookup(n: int) -> str:
    _log_key(n, _key())
    _log(f"tool {n}")
    if _hang_here(n):
        _log("hanging")
        await asyncio.sleep(120)
    return f"fact {n}"


def _result(session: Any, stops: list[str], replies: list[str]) -> dict[str, Any]:
    summary = session.summary()
    return {
        "thread_id": session.thread_id,
        "turns": summary["turns"],
        "tool_calls": summary["tool_calls"],
        "usage": summary["usage"],
        "cost_usd": str(summary["cost_usd"]),
        "stops": stops,
        "replies": replies,
        "replayed": session.summary()["events"].get("dbos.replayed", 0),
    }


@DBOS.workflow(name="agentmw_test_run")
def run() -> dict[str, Any]:
    stops: list[str] = []
    replies: list[str] = []
    with workflow_session(AGENT) as session:
        for n in range(1, 20):
            try:
                reply, _ = session.run_turn(model_turn, n, model=MODEL)
            except BudgetExceededError:
                stops.append(f"turn {n}: budget")
                break
            try:
                replies.append(session.run_tool("lookup", lookup, n) + " / " + reply["text"])
            except LimitExceededError as exc:
                stops.append(f"tool {n}: {exc.limit}")
        return _result(session, stops, replies)


@DBOS.workflow(name="agentmw_test_arun")
async def arun() -> dict[str, Any]:
    stops: list[str] = []
    replies: list[str] = []
    async with workflow_session(AGENT) as session:
        for n in range(1, 20):
            try:
                reply, _ = await session.arun_turn(amodel_turn, n, model=MODEL)
            except BudgetExceededError:
                stops.append(f"turn {n}: budget")
                break
            try:
                fact = await session.arun_tool("lookup", alookup, n)
                replies.append(fact + " / " + reply["text"])
            except LimitExceededError as exc:
                stops.append(f"tool {n}: {exc.limit}")
        return _result(session, stops, replies)


# -- the queue run --------------------------------------------------------------------------
QUEUED, FREE = "dbos-queued-model", "dbos-free-model"
_lock = threading.Lock()
_in_flight: dict[str, int] = {QUEUED: 0, FREE: 0}
_peak: dict[str, int] = {QUEUED: 0, FREE: 0}


def _enter(model: str) -> None:
    with _lock:
        _in_flight[model] += 1
        _peak[model] = max(_peak[model], _in_flight[model])


def _leave(model: str) -> None:
    with _lock:
        _in_flight[model] -= 1


_model_calls: list[int] = []  # every real execution of a slow turn, by n


def slow_turn(n: int, model: str) -> Usage:
    _model_calls.append(n)
    _enter(model)
    try:
        time.sleep(0.4)
    finally:
        _leave(model)
    return Usage(input_tokens=10 * n, output_tokens=1)


async def aslow_turn(n: int, model: str) -> Usage:
    _model_calls.append(n)
    _enter(model)
    try:
        await asyncio.sleep(0.4)
    finally:
        _leave(model)
    return Usage(input_tokens=10 * n, output_tokens=1)


QUEUE_AGENT: Agent | None = None


@DBOS.workflow(name="agentmw_test_queued")
def queued_run(n: int, model: str) -> int:
    assert QUEUE_AGENT is not None
    with workflow_session(QUEUE_AGENT) as session:
        _, usage = session.run_turn(slow_turn, n, model, model=model)
        return usage.input_tokens


@DBOS.workflow(name="agentmw_test_aqueued")
async def aqueued_run(n: int, model: str) -> int:
    assert QUEUE_AGENT is not None
    async with workflow_session(QUEUE_AGENT) as session:
        _, usage = await session.arun_turn(aslow_turn, n, model, model=model)
        return usage.input_tokens


# -- a streamed turn: one step whose chunks replay ---------------------------------------------
STREAM_AGENT = Agent("dbos-stream", stack=Stack([DBOSStep()]))


def _chunks() -> list[dict[str, Any]]:
    return [{"text": "a"}, {"text": "b"}, {"text": "", "usage": TURN_USAGE}]


@agent_turn(model=MODEL)
def stream_turn() -> Any:
    _log("stream")
    yield from _chunks()


@agent_turn(model=MODEL)
async def astream_turn() -> Any:
    _log("stream")
    for chunk in _chunks():
        yield chunk


def _after() -> str:
    _log("after")
    return "done"


def _stream_result(session: Any, chunks: list[Any]) -> dict[str, Any]:
    return {
        "chunks": [c["text"] for c in chunks],
        "turns": session.iterations,
        "usage": session.usage.as_dict(),
        "cost_usd": str(session.cost_usd),
        "replayed": session.summary()["events"].get("dbos.replayed", 0),
    }


@DBOS.workflow(name="agentmw_test_stream")
def streamed_run() -> dict[str, Any]:
    with workflow_session(STREAM_AGENT) as session:
        chunks = list(stream_turn())
        session.run_tool("after", _after)
        return _stream_result(session, chunks)


@DBOS.workflow(name="agentmw_test_astream")
async def astreamed_run() -> dict[str, Any]:
    async with workflow_session(STREAM_AGENT) as session:
        chunks = [c async for c in astream_turn()]
        await session.arun_tool("after", _after)
        return _stream_result(session, chunks)


def _streams(workflow_id: str) -> dict[str, Any]:
    """Run each streamed workflow, then fork it from step 2: the fork replays the stream."""
    out: dict[str, Any] = {}
    for mode, workflow in (("sync", streamed_run), ("async", astreamed_run)):
        with SetWorkflowID(f"{workflow_id}-stream-{mode}"):
            first = DBOS.start_workflow(workflow).get_result()
        fork = DBOS.fork_workflow(f"{workflow_id}-stream-{mode}", 2)
        out[mode] = {"first": first, "fork": fork.get_result(), "fork_id": fork.workflow_id}
    return out


def _launch(db_url: str) -> None:
    DBOS(
        config={
            "name": "agentmw-dbos-test",
            "system_database_url": db_url,
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.05,
        }
    )
    DBOS.launch()


def main() -> None:
    global QUEUE_AGENT
    role, db_url, _, workflow_id = sys.argv[1:5]
    _launch(db_url)
    if role == "crash":
        with SetWorkflowID(f"{workflow_id}-sync"):
            handles: list[Any] = [DBOS.start_workflow(run)]
        with SetWorkflowID(f"{workflow_id}-async"):
            handles.append(DBOS.start_workflow(arun))  # DBOS runs it on its own event loop
        for handle in handles:
            handle.get_result()
        return
    if role == "recover":
        out: dict[str, Any] = {}
        for mode, _workflow in (("sync", run), ("async", arun)):
            recovered: Any = DBOS.retrieve_workflow(f"{workflow_id}-{mode}").get_result()
            with SetWorkflowID(f"{workflow_id}-{mode}-clean"):
                clean = run() if mode == "sync" else asyncio.run(arun())
            out[mode] = {"recovered": recovered, "clean": clean}
        print(json.dumps(out))
        return
    if role == "queue":
        queue = model_queue(QUEUED, concurrency=2, polling_interval_sec=0.05)
        QUEUE_AGENT = Agent(
            "dbos-queue", stack=Stack([DBOSStep(queues={QUEUED: queue}, polling_interval_sec=0.05)])
        )
        queued: dict[str, Any] = {}
        for mode in ("sync", "async"):
            results = _queue_sync() if mode == "sync" else asyncio.run(_queue_async())
            queued[mode] = {"peak": dict(_peak), "results": results}
            _peak.update({QUEUED: 0, FREE: 0})
        queued["streams"] = _streams(workflow_id)
        print(json.dumps(queued))
        return
    raise SystemExit(f"unknown role {role!r}")


def _queue_sync() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in (QUEUED, FREE):
        handles = [DBOS.start_workflow(queued_run, n, model) for n in range(1, 7)]
        out[model] = [h.get_result() for h in handles]
        if model == QUEUED:
            out["replay"] = _replay_queued(handles[0].workflow_id)
    return out


def _replay_queued(workflow_id: str) -> list[Any]:
    """Fork a queued-turn workflow past its last step: the turn replays, the model is not called."""
    steps = DBOS.list_workflow_steps(workflow_id)
    before = len(_model_calls)
    result = DBOS.fork_workflow(workflow_id, len(steps) + 1).get_result()
    return [result, len(_model_calls) - before, [s["function_name"] for s in steps]]


async def _queue_async() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in (QUEUED, FREE):
        handles = [await DBOS.start_workflow_async(aqueued_run, n, model) for n in range(1, 7)]
        out[model] = [await h.get_result() for h in handles]
        if model == QUEUED:
            out["replay"] = await asyncio.to_thread(_replay_queued, handles[0].workflow_id)
    return out


if __name__ == "__main__":
    main()
