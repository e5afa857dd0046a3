"""A DBOS worker SIGKILLed mid-run, and a second process that recovers its agent run.

Offline: DBOS keeps its system database in a SQLite file here (a fleet shares PostgreSQL).
The first process runs the workflow and is killed inside tool 2; this process then launches
DBOS on the same file, which recovers the workflow: turns 1-2 and tool 1 replay from DBOS's
records (they do not run again), and the session's totals come out as a clean run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from agentmw import Agent, Stack, Usage
from agentmw.integrations.dbos import DBOSStep, workflow_session
from agentmw.middleware import Budget
from agentmw.pricing import register_pricing

register_pricing("demo-model", {"input_per_million": 1, "output_per_million": 2})
agent = Agent("researcher", stack=Stack([DBOSStep(), Budget(1, enforce=True)]))
WORKDIR = Path(os.environ.get("DEMO_DIR", "."))
KILLER = os.environ.get("DEMO_ROLE") == "worker"


def _ran(what: str) -> None:
    with open(WORKDIR / "executions.log", "a") as log:
        log.write(what + "\n")


def ask(question: str) -> dict[str, Any]:
    _ran(f"turn: {question}")
    return {"text": f"answer to {question}", "usage": Usage(input_tokens=1000, output_tokens=200)}


def search(query: str) -> str:
    _ran(f"tool: {query}")
    if KILLER and query.startswith("answer to q2"):
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-tool
    return f"facts about {query}"


@DBOS.workflow(name="demo_research")
def research() -> dict[str, Any]:
    with workflow_session(agent) as session:
        for question in ("q1", "q2", "q3"):
            reply, _ = session.run_turn(ask, question, model="demo-model")
            session.run_tool("search", search, reply["text"])
        return {"turns": session.iterations, "tools": session.tool_calls,
                "tokens": session.usage.total_tokens, "cost": str(session.cost_usd)}  # fmt: skip


def launch() -> None:
    DBOS(config={"name": "agentmw-demo", "system_database_url": f"sqlite:///{WORKDIR}/dbos.db",
                 "log_level": "ERROR"})  # fmt: skip
    DBOS.launch()


def main() -> None:
    if KILLER:
        launch()
        with SetWorkflowID("research-1"):
            research()
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DEMO_DIR": tmp, "DEMO_ROLE": "worker"}
        worker = subprocess.run([sys.executable, __file__], env=env, check=False)
        print(f"worker exited with {worker.returncode} (SIGKILL is {-signal.SIGKILL})")
        global WORKDIR
        WORKDIR = Path(tmp)
        launch()  # recovers the workflow the dead worker left pending
        result = DBOS.retrieve_workflow("research-1").get_result()
        DBOS.destroy()
        print("recovered run:", result)
        print("executions:")
        for line in (WORKDIR / "executions.log").read_text().splitlines():
            print("  " + line)


if __name__ == "__main__":
    main()
