"""Durable side effects: a worker is SIGKILLed inside a payment tool; the resume does not pay
twice, an operator resolves the in-flight step, and the run finishes.

Offline: SQLite in a temporary directory, a fake payment API that dedupes on the idempotency
key, the worker is this file run again as a child process.
Run: python examples/durable_side_effects.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from agentmw import Agent, agent_tool
from agentmw.cli import main as cli
from agentmw.middleware import Checkpoint, InFlightStepError
from agentmw.stores import SqliteSaver


class PaymentApi:
    """A fake payment service: it charges once per idempotency key (as real ones do)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def charges(self) -> dict[str, int]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def charge(self, amount: int, key: str) -> str:
        charges = self.charges()
        charges.setdefault(key, amount)
        self.path.write_text(json.dumps(charges))
        return f"ch_{key[-6:]}"


def run(db: Path, api: PaymentApi, *, die: bool) -> str:
    @agent_tool(effects="once")  # a payment must never go out twice on its own
    def pay(invoice: str, amount: int, idempotency_key: str = "") -> str:
        receipt = api.charge(amount, idempotency_key)
        if die:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies right after the charge
        return receipt

    @agent_tool
    def email(to: str, text: str, idempotency_key: str = "") -> str:
        return f"mail to {to}: {text}"

    saver = SqliteSaver(db)
    agent = Agent("billing", stack=[Checkpoint(saver)])
    try:
        with agent.session(thread_id="invoice-7"):
            receipt = pay("invoice-7", 100)
            return email("ann@example.com", f"paid, receipt {receipt}")
    finally:
        saver.close()


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    run(Path(sys.argv[2]), PaymentApi(Path(sys.argv[3])), die=True)
elif __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        db, api = Path(tmp) / "ck.db", PaymentApi(Path(tmp) / "payments.json")
        worker = subprocess.run([sys.executable, __file__, "worker", str(db), str(api.path)])
        print(f"worker killed by SIGKILL: {worker.returncode == -signal.SIGKILL}")
        print(f"charges after the crash: {len(api.charges())}")
        cli(["steps", str(db)])  # the step in flight, with its idempotency key
        try:
            run(db, api, die=False)
        except InFlightStepError as exc:
            print(f"resume refused: step {exc.step} ({exc.name}) was in flight")
        (key,) = api.charges()  # the operator finds the charge under the step's key
        cli(
            [
                "steps",
                "resolve",
                "invoice-7",
                "1",
                "--db",
                str(db),
                "--result",
                json.dumps(f"ch_{key[-6:]}"),
            ]
        )
        print(run(db, api, die=False))
        print(f"charges after the resume: {len(api.charges())}")
