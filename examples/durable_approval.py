"""Durable approvals: a worker asks for approval of a transfer and exits cleanly (code 3); an
operator edits the amount with the CLI; a second worker resumes the thread, does not repeat the
lookup, and sends the edited amount.

Offline: SQLite in a temporary directory; each worker is this file run again as a child process.
Run: python examples/durable_approval.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from agentmw import Agent
from agentmw.cli import main as cli
from agentmw.errors import ApprovalPendingError
from agentmw.middleware import Checkpoint, Policy
from agentmw.policy import PolicyEngine, Rule, fact, require_approval
from agentmw.stores import SqliteSaver

EXIT_PENDING = 3  # "waiting for a human": the scheduler resumes the job after a decision


def work(db: Path, log: Path) -> int:
    def lookup(account: str) -> int:
        with log.open("a") as f:
            f.write("lookup\n")
        return 500

    def transfer(account: str, amount: int) -> str:
        with log.open("a") as f:
            f.write(f"transfer {amount}\n")
        return f"sent {amount} to {account}"

    rule = Rule("big-transfer", fact("tool") == "transfer", require_approval("Send the money?"))
    saver = SqliteSaver(db)
    agent = Agent("payer", stack=[Checkpoint(saver), Policy(PolicyEngine([rule]))])
    try:
        with agent.session(thread_id="pay-1") as s:
            balance = s.run_tool("lookup", lookup, "acme")
            print(s.run_tool("transfer", transfer, "acme", min(balance, 100)))
    except ApprovalPendingError as exc:
        print(f"waiting for approval: step {exc.step} ({exc.name}), rule {exc.rule}")
        return EXIT_PENDING
    finally:
        saver.close()
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    sys.exit(work(Path(sys.argv[2]), Path(sys.argv[3])))
elif __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        db, log = Path(tmp) / "ck.db", Path(tmp) / "ran.log"
        worker = [sys.executable, __file__, "worker", str(db), str(log)]
        first = subprocess.run(worker, capture_output=True, text=True)
        print(first.stdout.strip())
        print(f"first worker exit code: {first.returncode}")
        cli(["approvals", "list", "--db", str(db)])
        edit = ["--arguments", '{"account": "acme", "amount": 40}', "--note", "capped at 40"]
        cli(["approvals", "edit", "pay-1", "2", "--db", str(db), *edit])
        second = subprocess.run(worker, capture_output=True, text=True)
        print(second.stdout.strip())
        print(f"second worker exit code: {second.returncode}")
        print("ran: " + ", ".join(log.read_text().splitlines()))
