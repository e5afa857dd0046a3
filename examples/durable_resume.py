"""Durable execution: run part-way, "crash", resume the thread, watch completed steps replay.

Offline, SQLite in a temporary directory. Run: python examples/durable_resume.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from agentmw import Agent, Usage
from agentmw.events import add_listener, remove_listener
from agentmw.middleware import Checkpoint
from agentmw.stores import SqliteSaver

ran: list[str] = []


class Crash(Exception):
    """Stands in for the process dying."""


def plan(goal: str) -> list[str]:
    ran.append(f"plan({goal})")
    return [f"{goal}: step {i}" for i in range(3)]


def act(task: str) -> str:
    ran.append(f"act({task})")
    return f"done {task}"


def agent_loop(agent: Agent, crash_after: int | None) -> list[str]:
    with agent.session(thread_id="report-42") as s:
        tasks, _ = s.run_turn(plan, "report", model="demo", usage=Usage(input_tokens=50))
        results = []
        for i, task in enumerate(tasks):
            if crash_after is not None and i == crash_after:
                raise Crash
            results.append(s.run_tool("act", act, task))
        print(f"  turns={s.iterations} tool_calls={s.tool_calls} tokens={s.usage.input_tokens}")
        return results


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        saver = SqliteSaver(Path(tmp) / "checkpoints.db")
        agent = Agent("writer", stack=[Checkpoint(saver)])
        print("first run (crashes after two tool calls):")
        try:
            agent_loop(agent, crash_after=2)
        except Crash:
            print(f"  crashed; ran so far: {ran}")
        ran.clear()
        replayed: list[int] = []

        def on_event(event: object) -> None:
            if getattr(event, "name", "") == "checkpoint.replayed":
                replayed.append(event.data["checkpoint_step"])  # type: ignore[attr-defined]

        add_listener(on_event)
        try:
            print("resumed run:")
            results = agent_loop(agent, crash_after=None)
        finally:
            remove_listener(on_event)
        print(f"  replayed steps {replayed}; ran live only: {ran}")
        print(f"  results: {results}")
        saver.close()


if __name__ == "__main__":
    main()
