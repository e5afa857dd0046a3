"""Durable approvals across processes: a worker ends with `ApprovalPendingError` (exit code 3),
the decision is recorded through the API or the `agentmw approvals` CLI, and a second worker
resumes the thread: approve and edit run the tool once, reject stops it, and no earlier step
runs again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmw.stores import PostgresSaver, SqliteSaver

WORKER = Path(__file__).parent / "approval_worker.py"
ROOT = Path(__file__).parent.parent.parent


def worker(store: tuple[str, str, str], counts: Path, mode: str) -> tuple[int, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(WORKER), *store, str(counts), mode]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode in (0, 3, 4), proc.stderr
    assert "Traceback" not in proc.stderr  # a clean exit, not a crash
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "agentmw", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def executed(counts: Path) -> Counter[str]:
    return Counter(counts.read_text().split())


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "ck.db"), "-"
        return
    conninfo = request.getfixturevalue("pg_conninfo")
    prefix = f"aw{uuid.uuid4().hex[:10]}"
    yield "postgres", conninfo, prefix
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        for t in ("checkpoints", "sessions", "schema", "approvals"):
            conn.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


def open_saver(store: tuple[str, str, str]) -> Any:
    if store[0] == "sqlite":
        return SqliteSaver(store[1])
    return PostgresSaver(store[1], table_prefix=store[2])


@pytest.mark.parametrize("decision", ["approve", "edit", "reject"])
def test_pending_in_one_process_resolved_by_api_resumed_in_another(
    tmp_path: Path, store: tuple[str, str, str], mode: str, decision: str
) -> None:
    counts = tmp_path / "counts.txt"
    code, pending = worker(store, counts, mode)
    assert code == 3
    assert pending == {
        "thread_id": "pay-1", "step": 3, "kind": "tool", "name": "transfer",
        "rule": "big-transfer",
    }  # fmt: skip
    assert executed(counts) == Counter({"plan": 1, "lookup": 1})
    saver = open_saver(store)
    try:
        (record,) = saver.list_approvals()
        assert record.arguments == {"account": "acme", "amount": 100}
        arguments = {"account": "acme", "amount": 40} if decision == "edit" else None
        saver.resolve_approval("pay-1", 3, decision, arguments=arguments, note="by test")
    finally:
        saver.close()
    code, out = worker(store, counts, mode)
    if decision == "reject":
        assert (code, out) == (4, {"rejected": 3, "note": "by test"})
        assert executed(counts) == Counter({"plan": 1, "lookup": 1})
        return
    amount = 40 if decision == "edit" else 100
    assert (code, out) == (0, ["plan for pay acme", {"balance": 500}, f"sent {amount} to acme"])
    assert executed(counts) == Counter({"plan": 1, "lookup": 1, "transfer": 1})
    assert worker(store, counts, mode) == (0, out)  # a third run replays every step
    assert executed(counts) == Counter({"plan": 1, "lookup": 1, "transfer": 1})


@pytest.mark.parametrize("decision", ["approve", "edit", "reject"])
def test_pending_resolved_with_the_cli(tmp_path: Path, mode: str, decision: str) -> None:
    db = tmp_path / "ck.db"
    store = ("sqlite", str(db), "-")
    counts = tmp_path / "counts.txt"
    assert worker(store, counts, mode)[0] == 3
    listed = cli("approvals", "list", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    header, _, row, hint = listed.stdout.rstrip("\n").split("\n")
    assert header.split() == [
        "THREAD", "STEP", "KIND", "NAME", "RULE", "PROMPT", "ARGUMENTS", "STATUS", "REQUESTED",
        "(UTC)",
    ]  # fmt: skip
    assert row.split()[:9] == [
        "pay-1", "3", "tool", "transfer", "big-transfer", "Send", "100?",
        '{"account":"acme","amount":100}', "pending",
    ]  # fmt: skip
    assert hint.startswith("1 approval(s) pending: decide each with `agentmw approvals")
    extra = ["--arguments", '{"account": "acme", "amount": 7}'] if decision == "edit" else []
    done = cli("approvals", decision, "pay-1", "3", "--db", str(db), *extra, "--note", "cli")
    assert done.returncode == 0, done.stderr
    status = {"approve": "approved", "edit": "edited", "reject": "rejected"}[decision]
    assert done.stdout.startswith(f"thread 'pay-1' step 3: {status}; a resume ")
    again = cli("approvals", "approve", "pay-1", "3", "--db", str(db))
    assert again.returncode == 1
    assert again.stderr == (
        f"agentmw: {db}: the approval of step 3 of thread 'pay-1' is {status} already:"
        " only a pending approval can be decided\n"
    )
    code, out = worker(store, counts, mode)
    if decision == "reject":
        assert (code, out) == (4, {"rejected": 3, "note": "cli"})
        assert executed(counts) == Counter({"plan": 1, "lookup": 1})
    else:
        amount = 7 if decision == "edit" else 100
        assert (code, out[2]) == (0, f"sent {amount} to acme")
        assert executed(counts) == Counter({"plan": 1, "lookup": 1, "transfer": 1})
