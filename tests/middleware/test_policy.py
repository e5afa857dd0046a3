"""The Policy layer: facts per call, every action, approval in async, gates feeding facts."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from agentmw import (
    Agent,
    AgentState,
    ApprovalRequiredError,
    Handoff,
    HandoffRequested,
    PolicyViolationError,
    SessionClosedError,
    Stack,
    Usage,
    agent_turn,
)
from agentmw.middleware import Policy
from agentmw.policy import (
    PolicyEngine,
    Rule,
    abort,
    deny,
    emit,
    fact,
    handoff,
    require_approval,
    switch_model,
    warn,
)
from agentmw.quality import GateOutcome, QualityGate, QualityLevel
from agentmw.testing import FakeClock, ScriptedModel, capture_events
from tests.support import state_of


def layer(*rules: Rule, **kw: Any) -> Stack:
    return Stack([Policy(PolicyEngine(rules), **kw)])


async def turn(mode: str, session: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    if mode == "sync":
        return session.run_turn(fn, *args, **kwargs)[0]
    return (await session.arun_turn(fn, *args, **kwargs))[0]


async def tool(mode: str, session: Any, name: str, fn: Any) -> Any:
    if mode == "sync":
        return session.run_tool(name, fn)
    return await session.arun_tool(name, fn)


class Sessions:
    """Enter a session with `with` or `async with` depending on the mode."""

    def __init__(self, mode: str, agent: Agent) -> None:
        self.session = agent.session()
        self.mode = mode

    async def __aenter__(self) -> Any:
        if self.mode == "sync":
            return self.session.__enter__()
        return await self.session.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        if self.mode == "sync":
            self.session.__exit__(*exc)
        else:
            await self.session.__aexit__(*exc)


async def test_deny_on_cost_never_calls(mode: str) -> None:
    model = ScriptedModel(["one", "two"])
    agent = Agent("writer", stack=layer(Rule("budget", fact("cost_usd") > 0.5, deny("spent"))))
    async with Sessions(mode, agent) as session:
        assert (await turn(mode, session, model, "a")).text == "one"
        session.ledger.record("m", Usage(1, 1), Decimal("0.75"))
        with capture_events() as events, pytest.raises(PolicyViolationError) as info:
            await turn(mode, session, model, "b")
    assert len(model.calls) == 1
    assert (info.value.rule, info.value.reason, info.value.action) == ("budget", "spent", "deny")
    assert events.named("policy.denied")[0].data == {"rule": "budget", "action": "deny"}


async def test_switch_model_reaches_the_call(mode: str) -> None:
    model = ScriptedModel(["a", "b"])
    rule = Rule("cheap", fact("turns") >= 1, switch_model("small-model"))

    @agent_turn
    def ask(prompt: str, *, model: str) -> Any:
        return scripted(prompt, model=model)

    @agent_turn
    async def aask(prompt: str, *, model: str) -> Any:
        return await scripted.acall(prompt, model=model)

    scripted = model
    async with Sessions(mode, Agent("w", stack=layer(rule))):
        if mode == "sync":
            first, second = ask("x", model="big-model"), ask("x", model="big-model")
        else:
            first, second = await aask("x", model="big-model"), await aask("x", model="big-model")
    assert model.calls[0][1]["model"] == "big-model"
    assert model.calls[1][1]["model"] == "small-model"
    assert (first.model, second.model) == ("big-model", "small-model")


async def test_warn_and_emit_events(mode: str) -> None:
    stack = layer(Rule("noisy", True, [warn("careful"), emit("custom.thing")]))
    with capture_events() as events:
        async with Sessions(mode, Agent("w", stack=stack)) as session:
            await turn(mode, session, ScriptedModel(["ok"]), "prompt text")
    warning = events.named("policy.warning")[0]
    assert (warning.detail, dict(warning.data)) == ("careful", {"rule": "noisy"})
    assert events.named("custom.thing")[0].data == {"rule": "noisy"}
    assert all("prompt text" not in repr(e.as_dict()) for e in events)


async def test_handoff_and_abort(mode: str) -> None:
    stack = layer(Rule("to-editor", fact("kind") == "turn", handoff("editor")))
    async with Sessions(mode, Agent("writer", project_id="p1", stack=stack)) as session:
        with pytest.raises(HandoffRequested) as info:
            await turn(mode, session, ScriptedModel(["x"]), "q")
    assert isinstance(info.value.handoff, Handoff)
    assert (info.value.handoff.source_role, info.value.handoff.target_role) == ("writer", "editor")
    assert info.value.handoff.source_session_id == session.id

    stack = layer(Rule("kill", fact("tool") == "rm", abort("dangerous")))
    async with Sessions(mode, Agent("writer", stack=stack)) as session:
        with pytest.raises(PolicyViolationError) as err:
            await tool(mode, session, "rm", lambda: None)
        assert session.state is AgentState.FAILED
        with pytest.raises(SessionClosedError):
            await turn(mode, session, ScriptedModel(["x"]), "q")
    assert err.value.action == "abort"


def test_approval_in_sync_raises() -> None:
    model = ScriptedModel(["x"])
    stack = layer(Rule("ask", True, require_approval("May I?")))
    with Agent("w", stack=stack).session() as session, pytest.raises(ApprovalRequiredError) as info:
        session.run_turn(model, "q")
    assert model.calls == []
    assert (info.value.rule, info.value.prompt, info.value.refused) == ("ask", "May I?", False)


@pytest.mark.parametrize("answer", [True, False])
async def test_approval_flow_in_async(answer: bool) -> None:
    model = ScriptedModel(["done"])
    stack = layer(Rule("ask", fact("kind") == "turn", require_approval("Spend $5?")))
    async with Agent("w", stack=stack).session() as session:
        task = asyncio.create_task(session.arun_turn(model.acall, "q"))
        for _ in range(50):
            await asyncio.sleep(0)
            if session.state is AgentState.WAITING_FOR_INPUT:
                break
        assert session.state is AgentState.WAITING_FOR_INPUT
        assert session.pending_prompt == "Spend $5?"
        assert model.calls == []
        session.provide_input(answer)
        if answer:
            result, _ = await task
            assert result.text == "done"
        else:
            with pytest.raises(ApprovalRequiredError) as info:
                await task
            assert info.value.refused
            assert model.calls == []
        assert state_of(session) is AgentState.RUNNING


async def test_facts_elapsed_failures_and_gate(mode: str) -> None:
    clock = FakeClock(100.0)
    seen: list[dict[str, Any]] = []

    def record(facts: Any) -> bool:
        seen.append(dict(facts))
        return False

    stack = layer(Rule("spy", record, warn("x")), clock=clock, gate=QualityGate("strict"))
    model = ScriptedModel([TimeoutError(), "ok"])
    async with Sessions(mode, Agent("writer", phase="draft", stack=stack)) as session:
        clock.advance(7.5)
        with pytest.raises(TimeoutError):
            await turn(mode, session, model, "q", model="m1")
        outcome = session.evaluate_gate(QualityLevel.STANDARD)
        await turn(mode, session, model, "q", model="m1")
        await tool(mode, session, "search", lambda: "r")
    assert isinstance(outcome, GateOutcome)
    assert not outcome.passed
    first, second, third = seen
    assert first["role"] == "writer"
    assert first["phase"] == "draft"
    assert (first["kind"], first["model"], first["tool"]) == ("turn", "m1", None)
    assert first["elapsed_s"] == 7.5
    assert first["consecutive_failures"] == 0
    assert second["consecutive_failures"] == 1
    assert second["last_failure"] == "timeout"
    assert second["quality_level"] == QualityLevel.STANDARD
    assert second["gate_score"] == pytest.approx(2 / 3, rel=1e-4)
    assert (third["kind"], third["tool"], third["turns"]) == ("tool", "search", 2)
    assert third["consecutive_failures"] == 0
    assert third["tokens"] > 0


async def test_completed_and_failed_roles(mode: str) -> None:
    stack = layer(Rule("after-review", fact("completed_roles").contains("reviewer"), deny("done")))
    async with Sessions(mode, Agent("reviewer", project_id="p", stack=stack)):
        pass
    with pytest.raises(RuntimeError):
        async with Sessions(mode, Agent("tester", project_id="p", stack=stack)):
            raise RuntimeError("boom")
    spy: list[Any] = []
    stack2 = layer(
        Rule("spy", lambda f: spy.append((f["completed_roles"], f["failed_roles"])), warn("x"))
    )
    async with Sessions(mode, Agent("writer", project_id="p", stack=stack2)) as session:
        await turn(mode, session, ScriptedModel(["x"]), "q")
    assert spy == [(frozenset({"reviewer"}), frozenset({"tester"}))]


def test_layer_options() -> None:
    with pytest.raises(TypeError, match="PolicyEngine"):
        Policy([])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="gate must be a QualityGate, got str 'strict'"):
        Policy(PolicyEngine([]), gate="strict")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="clock must be a callable returning seconds"):
        Policy(PolicyEngine([]), clock=5)  # type: ignore[arg-type]
