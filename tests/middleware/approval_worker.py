"""A worker process for the durable-approval tests: runs one payment thread on a saver.

Usage: approval_worker.py STORE TARGET PREFIX COUNTS MODE. STORE is "sqlite" (TARGET a file) or
"postgres" (TARGET a conninfo, PREFIX the table prefix). Each execution of a step appends its
name to COUNTS. Exit codes: 0 finished (prints the results as JSON), 3 an approval is pending
(prints its fields as JSON), 4 the call was rejected.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from agentmw import Agent
from agentmw.errors import ApprovalPendingError, ApprovalRejectedError
from agentmw.middleware import Checkpoint, Policy
from agentmw.policy import PolicyEngine, Rule, fact, require_approval
from agentmw.stores import PostgresSaver, SqliteSaver

EXIT_PENDING = 3
EXIT_REJECTED = 4
store, target, prefix, counts, mode = sys.argv[1:6]


def count(name: str) -> None:
    with open(counts, "a", encoding="utf-8") as f:
        f.write(name + "\n")


def plan(goal: str) -> str:
    count("plan")
    return f"plan for {goal}"


def lookup(account: str) -> dict[str, int]:
    count("lookup")
    return {"balance": 500}


def transfer(account: str, amount: int) -> str:
    count("transfer")
    return f"sent {amount} to {account}"


async def aplan(goal: str) -> str:
    return plan(goal)


async def alookup(account: str) -> dict[str, int]:
    return lookup(account)


async def atransfer(account: str, amount: int) -> str:
    return transfer(account, amount)


aplan.__name__ = "plan"


def saver() -> Any:
    if store == "sqlite":
        return SqliteSaver(target)
    pg = PostgresSaver(target, table_prefix=prefix)
    pg.setup()
    return pg


def agent(s: Any) -> Agent:
    rule = Rule("big-transfer", fact("tool") == "transfer", require_approval("Send 100?"))
    return Agent("payer", stack=[Checkpoint(s), Policy(PolicyEngine([rule]))])


def run_sync(s: Any) -> list[Any]:
    with agent(s).session(thread_id="pay-1") as session:
        return [
            session.run_turn(plan, "pay acme", model="m")[0],
            session.run_tool("lookup", lookup, "acme"),
            session.run_tool("transfer", transfer, "acme", 100),
        ]


async def run_async(s: Any) -> list[Any]:
    async with agent(s).session(thread_id="pay-1") as session:
        return [
            (await session.arun_turn(aplan, "pay acme", model="m"))[0],
            await session.arun_tool("lookup", alookup, "acme"),
            await session.arun_tool("transfer", atransfer, "acme", 100),
        ]


def main() -> int:
    s = saver()
    try:
        out = run_sync(s) if mode == "sync" else asyncio.run(run_async(s))
    except ApprovalPendingError as exc:
        fields = {k: getattr(exc, k) for k in ("thread_id", "step", "kind", "name", "rule")}
        print(json.dumps(fields))
        return EXIT_PENDING
    except ApprovalRejectedError as exc:
        print(json.dumps({"rejected": exc.step, "note": exc.note}))
        return EXIT_REJECTED
    finally:
        s.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
