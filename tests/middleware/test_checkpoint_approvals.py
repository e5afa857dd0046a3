"""Durable approvals: a `require_approval` in a checkpointed session records a pending approval
and ends the run with `ApprovalPendingError`; a decision recorded with `resolve_approval` is
applied when the thread resumes (approve runs the call, edit runs it with new arguments, reject
raises `ApprovalRejectedError`), and earlier steps are never run again."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmw import Agent, Stack, agent_tool
from agentmw.core.session.lifecycle import AgentState
from agentmw.errors import ApprovalPendingError, ApprovalRejectedError, ControlFlowError
from agentmw.middleware import Checkpoint, Policy
from agentmw.policy import PolicyEngine, Rule, fact, require_approval
from agentmw.stores import ApprovalSaver, InMemorySaver, PostgresSaver, SqliteSaver
from agentmw.testing import capture_events

runs: Counter[str] = Counter()
paid: list[tuple[str, int]] = []


def plan(goal: str) -> str:
    runs["plan"] += 1
    return f"plan for {goal}"


def lookup(account: str) -> dict[str, int]:
    runs["lookup"] += 1
    return {"balance": 500}


def transfer(account: str, amount: int) -> str:
    runs["transfer"] += 1
    paid.append((account, amount))
    return f"sent {amount} to {account}"


async def aplan(goal: str) -> str:
    return plan(goal)


async def alookup(account: str) -> dict[str, int]:
    return lookup(account)


async def atransfer(account: str, amount: int) -> str:
    return transfer(account, amount)


aplan.__name__ = "plan"

RULE = Rule("big-transfer", fact("tool") == "transfer", require_approval("Send the money?"))


def stack(saver: Any, **kw: Any) -> Stack:
    return Stack([Checkpoint(saver, **kw), Policy(PolicyEngine([RULE]))])


async def run(saver: Any, mode: str, thread: str = "t-1", **kw: Any) -> list[Any]:
    """The agent's code: the same on every run of the thread."""
    agent = Agent("payer", stack=stack(saver, **kw))
    if mode == "sync":
        with agent.session(thread_id=thread) as s:
            return [
                s.run_turn(plan, "pay acme", model="m")[0],
                s.run_tool("lookup", lookup, "acme"),
                s.run_tool("transfer", transfer, "acme", 100),
            ]
    async with agent.session(thread_id=thread) as s:
        return [
            (await s.arun_turn(aplan, "pay acme", model="m"))[0],
            await s.arun_tool("lookup", alookup, "acme"),
            await s.arun_tool("transfer", atransfer, "acme", 100),
        ]


async def resolve(saver: Any, mode: str, *args: Any, **kw: Any) -> Any:
    if mode == "sync":
        return saver.resolve_approval(*args, **kw)
    return await saver.aresolve_approval(*args, **kw)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    runs.clear()
    paid.clear()
    if request.param == "memory":
        yield InMemorySaver()
        return
    if request.param == "sqlite":
        s = SqliteSaver(tmp_path / "ck.db")
        yield s
        s.close()
        return
    import psycopg

    conninfo = request.getfixturevalue("pg_conninfo")
    prefix = f"ap{uuid.uuid4().hex[:10]}"
    pg = PostgresSaver(conninfo, table_prefix=prefix)
    pg.setup()
    try:
        yield pg
    finally:
        pg.close()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for t in ("checkpoints", "sessions", "schema", "approvals"):
                conn.execute(f"DROP TABLE IF EXISTS {prefix}_{t}")


async def pending_run(saver: Any, mode: str) -> ApprovalPendingError:
    with pytest.raises(ApprovalPendingError) as info:
        await run(saver, mode)
    return info.value


async def test_the_run_ends_with_a_pending_approval(saver: Any, mode: str) -> None:
    checked: object = saver
    assert isinstance(checked, ApprovalSaver)  # every agentmw saver keeps approvals
    with capture_events() as events:
        exc = await pending_run(saver, mode)
    assert isinstance(exc, ControlFlowError)
    assert (exc.thread_id, exc.step, exc.kind, exc.name, exc.rule, exc.prompt) == (
        "t-1", 3, "tool", "transfer", "big-transfer", "Send the money?"
    )  # fmt: skip
    assert "Send the money" not in str(exc)  # the prompt is a field, never the message
    assert "agentmw approvals approve|reject|edit t-1 3 --db DB" in str(exc)
    assert dict(runs) == {"plan": 1, "lookup": 1}  # the tool never ran
    (pending,) = saver.list_approvals()
    assert (pending.thread_id, pending.step, pending.kind, pending.name) == (
        "t-1", 3, "tool", "transfer"
    )  # fmt: skip
    assert (pending.rule, pending.prompt, pending.status) == (
        "big-transfer", "Send the money?", "pending"
    )  # fmt: skip
    assert pending.arguments == {"account": "acme", "amount": 100}
    assert pending.decided_at is None
    assert pending.edited_arguments is None
    assert saver.get_approvals("t-1") == [pending]
    assert [(r.step, r.status) for r in saver.get_steps("t-1")] == [
        (1, "completed"), (2, "completed"), (3, "failed")
    ]  # fmt: skip
    names = [e.name for e in events]
    assert "policy.approval_required" in names
    (event,) = [e for e in events if e.name == "checkpoint.approval_pending"]
    assert dict(event.data) == {"checkpoint_step": 3, "rule": "big-transfer"}
    # Resuming before anyone decides: the same pending approval, nothing re-run.
    again = await pending_run(saver, mode)
    assert again.step == 3
    assert dict(runs) == {"plan": 1, "lookup": 1}
    assert len(saver.list_approvals()) == 1


async def test_approve_runs_the_tool_on_resume(saver: Any, mode: str) -> None:
    await pending_run(saver, mode)
    record = await resolve(saver, mode, "t-1", 3, "approve", note="ok by ann")
    assert (record.status, record.note) == ("approved", "ok by ann")
    assert record.decided_at is not None
    assert saver.list_approvals() == []
    assert [a.status for a in saver.list_approvals(pending_only=False)] == ["approved"]
    with capture_events() as events:
        out = await run(saver, mode)
    assert out == ["plan for pay acme", {"balance": 500}, "sent 100 to acme"]
    assert dict(runs) == {"plan": 1, "lookup": 1, "transfer": 1}  # earlier steps replayed
    assert paid == [("acme", 100)]
    (resumed,) = [e for e in events if e.name == "checkpoint.approval_resumed"]
    assert dict(resumed.data) == {"checkpoint_step": 3, "decision": "approved"}
    (approved,) = [e for e in events if e.name == "policy.approved"]
    assert dict(approved.data) == {"rule": "big-transfer", "durable": True}
    # A third run replays everything, the approved tool included.
    assert await run(saver, mode) == out
    assert runs["transfer"] == 1


async def test_edit_runs_the_tool_with_the_edited_arguments(saver: Any, mode: str) -> None:
    await pending_run(saver, mode)
    record = await resolve(
        saver, mode, "t-1", 3, "edit", arguments={"account": "acme", "amount": 50}
    )
    assert (record.status, record.edited_arguments) == ("edited", {"account": "acme", "amount": 50})
    assert record.arguments == {"account": "acme", "amount": 100}  # the proposal is kept
    out = await run(saver, mode)
    assert out[2] == "sent 50 to acme"
    assert paid == [("acme", 50)]
    assert dict(runs) == {"plan": 1, "lookup": 1, "transfer": 1}
    assert await run(saver, mode) == out  # the code still passes 100: the edited step replays
    assert paid == [("acme", 50)]


async def test_reject_reaches_the_code_as_approval_rejected(saver: Any, mode: str) -> None:
    await pending_run(saver, mode)
    await resolve(saver, mode, "t-1", 3, "reject", note="too much")
    for _ in range(2):  # every resume meets the same rejection
        with pytest.raises(ApprovalRejectedError) as info:
            await run(saver, mode)
        exc = info.value
        assert isinstance(exc, ControlFlowError)
        assert (exc.thread_id, exc.step, exc.kind, exc.name, exc.rule, exc.note) == (
            "t-1", 3, "tool", "transfer", "big-transfer", "too much"
        )  # fmt: skip
        assert str(exc) == (
            "tool 'transfer' (thread 't-1', step 3) was rejected by its reviewer"
            " (policy rule 'big-transfer')"
        )
    assert paid == []
    assert dict(runs) == {"plan": 1, "lookup": 1}


async def test_resolve_approval_checks_its_arguments(saver: Any, mode: str) -> None:
    await pending_run(saver, mode)
    with pytest.raises(ValueError, match="decision must be one of approve, reject, edit; got 'ok'"):
        await resolve(saver, mode, "t-1", 3, "ok")
    with pytest.raises(TypeError, match="decision must be one of approve, reject, edit; got int"):
        await resolve(saver, mode, "t-1", 3, 1)
    with pytest.raises(ValueError, match="thread 't-1' has no approval at step 9"):
        await resolve(saver, mode, "t-1", 9, "approve")
    with pytest.raises(ValueError, match="thread 'nope' has no approval at step 3"):
        await resolve(saver, mode, "nope", 3, "approve")
    with pytest.raises(ValueError, match=r'decision "edit" needs arguments=\.\.\.'):
        await resolve(saver, mode, "t-1", 3, "edit")
    with pytest.raises(ValueError, match="arguments are only for decision \"edit\", not 'approve'"):
        await resolve(saver, mode, "t-1", 3, "approve", arguments={"amount": 1})
    with pytest.raises(TypeError, match="arguments must be a mapping of parameter names"):
        await resolve(saver, mode, "t-1", 3, "edit", arguments=[1, 2])
    with pytest.raises(TypeError, match="arguments must be JSON-serializable"):
        await resolve(saver, mode, "t-1", 3, "edit", arguments={"amount": object()})
    with pytest.raises(TypeError, match="note must be a str or None, got int"):
        await resolve(saver, mode, "t-1", 3, "approve", note=5)
    assert [a.status for a in saver.list_approvals()] == ["pending"]  # nothing changed
    await resolve(saver, mode, "t-1", 3, "approve")
    with pytest.raises(ValueError, match="is approved already: only a pending approval"):
        await resolve(saver, mode, "t-1", 3, "reject")


async def test_delete_thread_drops_its_approvals(saver: Any, mode: str) -> None:
    await pending_run(saver, mode)
    if mode == "sync":
        saver.delete_thread("t-1")
    else:
        await saver.adelete_thread("t-1")
    assert saver.list_approvals(pending_only=False) == []


async def test_approvals_wait_keeps_async_calls_waiting_in_process() -> None:
    runs.clear()
    saver = InMemorySaver()
    agent = Agent("payer", stack=stack(saver, approvals="wait"))
    async with agent.session(thread_id="t-w") as s:
        task = asyncio.create_task(s.arun_tool("transfer", atransfer, "acme", 7))
        for _ in range(50):
            await asyncio.sleep(0)
            if s.state is AgentState.WAITING_FOR_INPUT:
                break
        assert s.pending_prompt == "Send the money?"
        s.provide_input(True)
        assert await task == "sent 7 to acme"
    assert saver.list_approvals(pending_only=False) == []
    # A sync call cannot wait: even with approvals="wait" it is recorded durably.
    with pytest.raises(ApprovalPendingError), agent.session(thread_id="t-s") as s2:
        s2.run_tool("transfer", transfer, "acme", 8)
    assert [a.thread_id for a in saver.list_approvals()] == ["t-s"]


def test_approvals_option_is_checked() -> None:
    with pytest.raises(ValueError, match="approvals must be one of durable, wait; got 'x'"):
        Checkpoint(InMemorySaver(), approvals="x")


async def test_a_streamed_tool_is_approved_durably(mode: str) -> None:
    chunks: list[str] = []

    def stream(n: int) -> Iterator[str]:
        chunks.append("ran")
        yield from ("a", "b")

    async def astream(n: int) -> AsyncIterator[str]:
        chunks.append("ran")
        for c in ("a", "b"):
            yield c

    saver = InMemorySaver()
    rule = Rule("ask", fact("tool") == "stream", require_approval("Stream?"))
    agent = Agent("s", stack=[Checkpoint(saver), Policy(PolicyEngine([rule]))])

    sync_tool = agent_tool(name="stream")(stream)
    async_tool = agent_tool(name="stream")(astream)

    async def consume() -> list[str]:
        if mode == "sync":
            with agent.session(thread_id="st"):
                return list(sync_tool(1))
        async with agent.session(thread_id="st"):
            return [c async for c in async_tool(1)]

    with pytest.raises(ApprovalPendingError):
        await consume()
    assert chunks == []
    saver.resolve_approval("st", 1, "reject")
    with pytest.raises(ApprovalRejectedError):
        await consume()
    assert chunks == []
