"""Crash tests: SIGKILL a checkpointed agent mid-run, resume in a new process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

WORKER = r"""
import asyncio, json, os, sqlite3, sys, time
from agentmw import Agent, Usage
from agentmw.middleware import Checkpoint
from agentmw.stores import SqliteSaver

db, side, ready, scenario, hang = sys.argv[1:6]
hang = hang == "1"

def effect(tag):
    with open(side, "a") as f:
        f.write(tag + "\n")

def wait_records(n):
    while True:
        with sqlite3.connect(db) as conn:
            sql = "SELECT count(*) FROM agentmw_checkpoints WHERE status = 'completed'"
            if conn.execute(sql).fetchone()[0] >= n:
                return
        time.sleep(0.01)

async def model(prompt: str) -> str:
    if hang and prompt == "p3":
        open(ready, "w").close()
        await asyncio.sleep(60)
    effect("turn:" + prompt)
    return prompt.upper()

async def tool(q: str) -> dict[str, str]:
    if hang and q == "c":
        await asyncio.to_thread(wait_records, 3)
        open(ready, "w").close()
        await asyncio.sleep(60)
    await asyncio.sleep(0.01)
    effect("tool:" + q)
    return {"q": q}

async def main():
    agent = Agent("worker", stack=[Checkpoint(SqliteSaver(db))])
    usage = lambda r: Usage(input_tokens=100, output_tokens=len(r))
    async with agent.session(thread_id="job") as s:
        if scenario == "seq":
            for i in range(5):
                await s.arun_turn(model, f"p{i}", model="m", usage=usage)
        else:
            await s.arun_turn(model, "p0", model="m", usage=usage)
            await asyncio.gather(*(s.arun_tool("tool", tool, q) for q in "abc"))
            await s.arun_turn(model, "p1", model="m", usage=usage)
        summary = s.summary()
    print(json.dumps({k: summary[k] for k in ("turns", "tool_calls", "usage")}
                     | {"cost": str(s.cost_usd)}))

asyncio.run(main())
"""


def _run(tmp: Path, name: str, scenario: str, *, crash: bool) -> dict[str, object] | None:
    script = tmp / "worker.py"
    script.write_text(WORKER)
    args = [sys.executable, str(script), str(tmp / f"{name}.db"), str(tmp / f"{name}.side"),
            str(tmp / f"{name}.ready"), scenario, "1" if crash else "0"]  # fmt: skip
    if not crash:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True)
        return json.loads(out.stdout)  # type: ignore[no-any-return]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready = tmp / f"{name}.ready"
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "worker never became ready"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    return None


def _effects(tmp: Path, name: str) -> list[str]:
    return sorted((tmp / f"{name}.side").read_text().split())


@pytest.mark.parametrize("scenario", ["seq", "gather"])
def test_sigkill_then_resume_runs_every_step_once(tmp_path: Path, scenario: str) -> None:
    clean = _run(tmp_path, "clean", scenario, crash=False)
    _run(tmp_path, "job", scenario, crash=True)
    before = _effects(tmp_path, "job")
    if scenario == "seq":
        assert before == ["turn:p0", "turn:p1", "turn:p2"]
    else:
        assert before == ["tool:a", "tool:b", "turn:p0"]  # "c" was in flight at the kill
    resumed = _run(tmp_path, "job", scenario, crash=False)
    assert _effects(tmp_path, "job") == _effects(tmp_path, "clean")  # each step ran once
    assert resumed == clean  # turns, tool calls, usage and cost equal a clean run's
