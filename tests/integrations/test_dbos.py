"""agentmw on DBOS: a SIGKILLed worker's run recovered in another process, and model queues.

The process tests run `tests/integrations/dbos_worker.py` against the real DBOS on the local
PostgreSQL, each in a database of its own that is dropped afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dbos")

import psycopg
from psycopg.conninfo import conninfo_to_dict

from agentmw import Agent, Stack, Usage, agent_turn
from agentmw.errors import BudgetExceededError, LimitExceededError, PermissionDeniedError
from agentmw.integrations import _dbos_queues
from agentmw.integrations import dbos as agentmw_dbos
from agentmw.integrations.dbos import DBOSStep, model_queue, step_name, workflow_session
from agentmw.middleware import Budget, Checkpoint, Telemetry
from agentmw.stores import InMemorySaver

ROOT = Path(__file__).resolve().parents[2]
WORKER_TIMEOUT = 90


# -- process tests ----------------------------------------------------------------------------
@pytest.fixture
def dbos_url(pg_conninfo: str) -> Iterator[str]:
    """A DBOS system database URL on a fresh, uniquely named database (dropped afterwards)."""
    params = conninfo_to_dict(pg_conninfo)
    name = f"agentmw_dbos_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    host, port, user = params.get("host", "127.0.0.1"), params.get("port", 5432), params["user"]
    try:
        yield f"postgresql://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _worker(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.integrations.dbos_worker", *args]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def _finish(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=WORKER_TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# What a clean run executes: five turns (the sixth is over budget), four tools (Limits refuses
# the fifth). The killed worker hung in tool 3, so tool 3 is the one step that runs twice.
CLEAN = ["turn 1", "tool 1", "turn 2", "tool 2", "turn 3", "tool 3", "turn 4", "tool 4", "turn 5"]
KILLED_AND_RECOVERED = [*CLEAN[:6], "hanging", "tool 3", *CLEAN[6:]]


def test_a_sigkilled_worker_is_recovered_without_rerunning_completed_steps(
    dbos_url: str, tmp_path: Path
) -> None:
    # One process runs the sync and the async workflow (each mode has its own workflow id and
    # execution log): both hang in tool 3, and the process is killed there.
    workflow_id = f"agentmw-test-{uuid.uuid4().hex[:8]}"
    logs = {mode: tmp_path / f"{workflow_id}-{mode}.log" for mode in ("sync", "async")}
    crashing = subprocess.Popen(
        _worker("crash", dbos_url, str(tmp_path), workflow_id),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + WORKER_TIMEOUT
        while not all("hanging" in _lines(log) for log in logs.values()):
            if crashing.poll() is not None:
                assert crashing.stderr is not None
                pytest.fail(crashing.stderr.read().decode()[-3000:])
            assert time.monotonic() < deadline, "the worker never reached tool 3"
            time.sleep(0.05)
        os.kill(crashing.pid, signal.SIGKILL)
        assert crashing.wait(timeout=10) == -signal.SIGKILL
    finally:
        if crashing.poll() is None:
            crashing.kill()
            crashing.wait()
        if crashing.stderr is not None:
            crashing.stderr.close()

    out = _finish(_worker("recover", dbos_url, str(tmp_path), workflow_id))
    assert set(out) == {"sync", "async"}
    for mode, log in logs.items():
        recovered, clean = out[mode]["recovered"], out[mode]["clean"]
        # Completed steps ran once; only the step in flight at the kill ran again.
        assert _lines(log) == KILLED_AND_RECOVERED, mode
        assert _lines(tmp_path / f"{workflow_id}-{mode}-clean.log") == CLEAN, mode
        # Each tool got an idempotency key made of the workflow id and its DBOS step id; the
        # rerun of tool 3 got the key its first execution had.
        keys = [line.split(" ", 1) for line in _lines(tmp_path / f"{workflow_id}-{mode}.keys")]
        assert [n for n, _ in keys] == ["1", "2", "3", "3", "4"], mode
        assert keys[2][1] == keys[3][1], mode
        assert len({key for _, key in keys}) == 4, mode
        assert all(key.startswith(f"dbos-{workflow_id}-{mode}-") for _, key in keys), mode
        # The recovered session replayed 3 turns and 2 tools and accounted for them: its
        # budget and limits stopped it where a clean run stops, with the same totals.
        assert recovered["thread_id"] == f"{workflow_id}-{mode}"
        assert recovered["replayed"] == 5, mode
        assert clean["replayed"] == 0, mode
        for key in ("turns", "tool_calls", "usage", "cost_usd", "stops", "replies"):
            assert recovered[key] == clean[key], (mode, key)
        assert clean["turns"] == 5
        assert clean["tool_calls"] == 4
        assert clean["usage"]["input_tokens"] == 5000
        assert clean["usage"]["output_tokens"] == 2500
        assert clean["cost_usd"] == "0.0075"
        assert clean["stops"] == ["tool 5: max_tool_calls", "turn 6: budget"]
        assert clean["replies"] == [f"fact {n} / answer {n}" for n in range(1, 5)]


def test_a_model_queue_caps_that_models_turns_in_flight(dbos_url: str, tmp_path: Path) -> None:
    out = _finish(_worker("queue", dbos_url, str(tmp_path), "q"))
    expected = [10 * n for n in range(1, 7)]
    for mode in ("sync", "async"):
        # Six workflows at once: the queued model never has more than 2 turns in flight, the
        # model without a queue has all six at once (so the cap is the queue's doing).
        assert out[mode]["peak"] == {"dbos-queued-model": 2, "dbos-free-model": 6}, mode
        results = out[mode]["results"]
        assert results["dbos-queued-model"] == expected, mode
        assert results["dbos-free-model"] == expected, mode
        # A queued turn is a child workflow plus its awaited result, both recorded: a fork of
        # the workflow past its last step replays the turn without calling the model.
        queued_turn = "agentmw.queued_turn" if mode == "sync" else "agentmw.aqueued_turn"
        assert results["replay"] == [10, 0, [queued_turn, "DBOS.getResult"]], mode

    # The same process ran a streamed turn in a workflow, then forked the workflow from step 2:
    # the fork replays the recorded chunks (the stream did not run again) with their usage.
    for mode in ("sync", "async"):
        streams = out["streams"][mode]
        first, fork = streams["first"], streams["fork"]
        assert first["chunks"] == ["a", "b", ""], mode
        assert first["replayed"] == 0, mode
        assert fork["replayed"] == 1, mode
        for key in ("chunks", "turns", "usage", "cost_usd"):
            assert fork[key] == first[key], (mode, key)
        assert first["usage"]["input_tokens"] == 1000, mode
        assert _lines(tmp_path / f"q-stream-{mode}.log") == ["stream", "after"], mode
        assert _lines(tmp_path / f"{streams['fork_id']}.log") == ["after"], mode


# -- in-process behaviour (no workflow, no database) -----------------------------------------
def test_importing_without_dbos_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    monkeypatch.setitem(sys.modules, "dbos", None)  # blocks `import dbos`
    monkeypatch.delitem(sys.modules, "agentmw.integrations.dbos")
    with pytest.raises(ImportError, match=r"pip install 'agentmw\[dbos\]'"):
        importlib.import_module("agentmw.integrations.dbos")


def _reply(text: str) -> dict[str, Any]:
    return {"text": text, "usage": Usage(input_tokens=3, output_tokens=2)}


async def _areply(text: str) -> dict[str, Any]:
    return _reply(text)


def test_outside_a_workflow_the_layer_passes_calls_through(mode: str) -> None:
    import asyncio

    agent = Agent("plain", stack=Stack([DBOSStep()]))

    def sync() -> tuple[Any, Usage, Any]:
        with agent.session() as session:
            result, usage = session.run_turn(_reply, "hi", model="m")
            return result, usage, session

    async def run_async() -> tuple[Any, Usage, Any]:
        async with agent.session() as session:
            result, usage = await session.arun_turn(_areply, "hi", model="m")
            return result, usage, session

    result, usage, session = sync() if mode == "sync" else asyncio.run(run_async())
    assert result["text"] == "hi"
    assert usage == Usage(input_tokens=3, output_tokens=2)
    assert session.iterations == 1
    assert not any(e.name == "dbos.replayed" for e in session.events)


def test_outside_a_workflow_a_stream_passes_through(mode: str) -> None:
    import asyncio

    from agentmw import agent_turn

    stack = Stack([DBOSStep()])

    @agent_turn(model="m", stack=stack)
    def chunks(n: int) -> Any:
        yield from (f"c{i}" for i in range(n))

    @agent_turn(model="m", stack=stack)
    async def achunks(n: int) -> Any:
        for i in range(n):
            yield f"c{i}"

    async def collect() -> list[str]:
        return [c async for c in achunks(3)]

    got = list(chunks(3)) if mode == "sync" else asyncio.run(collect())
    assert got == ["c0", "c1", "c2"]


def test_workflow_session_checks_the_stack_and_the_context() -> None:
    with pytest.raises(ValueError, match=r"no DBOSStep layer.*add one right after Telemetry"):
        workflow_session(Agent("a", stack=Stack([])))
    below_budget = Agent("late", stack=Stack([Telemetry(), Budget(1), DBOSStep()]))
    with pytest.raises(
        ValueError, match=r"DBOSStep must come first, or right after Telemetry; Budget above it"
    ):
        workflow_session(below_budget)
    both = Agent("b", stack=Stack([DBOSStep(), Checkpoint(InMemorySaver())]))
    with pytest.raises(ValueError, match=r"both DBOSStep and Checkpoint.*without\(Checkpoint\)"):
        workflow_session(both)
    with pytest.raises(RuntimeError, match=r"must be called in a DBOS workflow.*outside any step"):
        workflow_session(Agent("c", stack=Stack([DBOSStep()])))


def test_dbos_step_validates_its_queues() -> None:
    with pytest.raises(TypeError, match=r"queues must be a mapping of model name -> dbos Queue"):
        DBOSStep(queues=["gpt"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"queues keys must be model names, got ' '"):
        DBOSStep(queues={" ": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"queues\['gpt'\] must be a dbos Queue.*got object"):
        DBOSStep(queues={"gpt": object()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"polling_interval_sec must be a number > 0, got 0"):
        DBOSStep(polling_interval_sec=0)
    assert DBOSStep().queues == {}
    assert DBOSStep().polling_interval_sec == 1.0


def test_model_queue_validates_before_touching_dbos() -> None:
    with pytest.raises(TypeError, match=r"model must be a string"):
        model_queue(3, concurrency=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"model must be a non-blank string"):
        model_queue(" ", concurrency=1)
    with pytest.raises(ValueError, match=r"concurrency must be an int >= 1, got 0"):
        model_queue("m", concurrency=0)
    with pytest.raises(TypeError, match=r"concurrency must be an int"):
        model_queue("m", concurrency=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"worker_concurrency must be an int >= 1, got 0"):
        model_queue("m", concurrency=1, worker_concurrency=0)
    with pytest.raises(ValueError, match=r"polling_interval_sec must be a number > 0, got 0"):
        model_queue("m", concurrency=1, polling_interval_sec=0)
    assert agentmw_dbos.queue_name("gpt-4o") == "agentmw-model-gpt-4o"


def module_level_turn(prompt: str) -> Usage:
    return Usage(input_tokens=len(prompt))


@agent_turn(model="m")
def decorated_turn(prompt: str) -> Usage:
    return Usage(input_tokens=len(prompt))


def test_a_queued_turn_needs_a_function_importable_by_name() -> None:
    ref = _dbos_queues._reference(module_level_turn)
    assert ref == f"{__name__}:module_level_turn"
    assert _dbos_queues._resolve(ref) is module_level_turn
    # A decorated turn resolves to the plain function, so the queue never re-enters the stack.
    raw = decorated_turn.__wrapped__  # type: ignore[attr-defined]
    assert _dbos_queues._resolve(_dbos_queues._reference(raw)) is raw

    def local_turn(prompt: str) -> Usage:
        return Usage()

    with pytest.raises(ValueError, match=r"must be importable as module:qualname; .*local_turn"):
        _dbos_queues._reference(local_turn)
    with pytest.raises(ValueError, match=r"<lambda> is not"):
        _dbos_queues._reference(lambda: None)


def test_step_names_say_kind_and_name() -> None:
    from agentmw.core.call import Call

    assert step_name(Call(kind="turn", name="ask", fn=print)) == "agentmw.turn:ask"
    assert step_name(Call(kind="tool", name="search", fn=print)) == "agentmw.tool:search"


@pytest.mark.parametrize(
    "error",
    [
        BudgetExceededError(1, 2, estimate_usd=3),
        LimitExceededError("max_turns", 4, 3),
        PermissionDeniedError("writer", "rm", "denied by rule"),
    ],
)
def test_agentmw_errors_survive_a_recorded_step(error: Exception) -> None:
    # DBOS pickles a failed step's exception and raises it again on recovery.
    import pickle

    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert vars(again) == vars(error)
