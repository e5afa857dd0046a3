"""`Policy`: declarative rules decide before any spend (deny, switch model, approval...)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from agentmw._validate import check_callable, check_instance
from agentmw.classify import classify_exception
from agentmw.core.call import Call
from agentmw.core.handoff import Handoff
from agentmw.core.middleware import Middleware
from agentmw.core.session.lifecycle import AgentState
from agentmw.errors import (
    ApprovalRequiredError,
    ControlFlowError,
    HandoffRequested,
    PolicyViolationError,
)
from agentmw.policy import Action, PolicyEngine
from agentmw.policy.facts import FACTS
from agentmw.quality import LEVEL_KEY, SCORE_KEY, QualityGate

if TYPE_CHECKING:
    from agentmw.core.session.session import Session

__all__ = ["Policy"]

_STATE = "agentmw.policy"


def _scenario(exc: BaseException, kind: str) -> str:
    """The failure scenario that feeds the `last_failure` fact."""
    return classify_exception(exc, kind=kind).scenario.value


class _SessionState:
    __slots__ = ("consecutive_failures", "last_failure", "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self.consecutive_failures = 0
        self.last_failure: str | None = None


def _roles(session: Session, state: AgentState) -> frozenset[str]:
    agent = session.agent
    return frozenset(
        s.agent.role
        for s in agent.registry.finished()
        if s.state is state and s.agent.project_id == agent.project_id
    )


class CallFacts(Mapping[str, Any]):
    """The facts of one call, computed on first access (rules usually read only a few)."""

    __slots__ = ("_call", "_clock", "_values")

    def __init__(self, call: Call, clock: Callable[[], float]) -> None:
        self._call = call
        self._clock = clock
        self._values: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        values = self._values
        if key not in values:
            if key not in FACTS:
                raise KeyError(key)
            values[key] = self._compute(key)
        return values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(FACTS)

    def __len__(self) -> int:
        return len(FACTS)

    def _compute(self, key: str) -> Any:
        call = self._call
        session, agent = call.session, call.agent
        if key == "kind":
            return call.kind
        if key == "model":
            return call.model
        if key == "tool":
            return call.name if call.kind == "tool" else None
        if key in ("role", "phase"):
            return getattr(agent, key) if agent is not None else None
        if session is None:
            return frozenset() if key.endswith("_roles") else None
        state: _SessionState | None = session.meta.get(_STATE)
        lookup: dict[str, Callable[[], Any]] = {
            "turns": lambda: session.iterations,
            "tool_calls": lambda: session.tool_calls,
            "tool_count": lambda: session.tool_count(call.name) if call.kind == "tool" else None,
            "tokens": lambda: session.usage.total_tokens,
            "cost_usd": lambda: float(session.cost_usd),
            "elapsed_s": lambda: self._clock() - state.started if state else session.elapsed_s,
            "consecutive_failures": lambda: state.consecutive_failures if state else 0,
            "last_failure": lambda: state.last_failure if state else None,
            "quality_level": lambda: session.meta.get(LEVEL_KEY),
            "gate_score": lambda: session.meta.get(SCORE_KEY),
            "completed_roles": lambda: _roles(session, AgentState.COMPLETED),
            "failed_roles": lambda: _roles(session, AgentState.FAILED),
        }
        return lookup[key]()


class Policy(Middleware):
    """Evaluates a `PolicyEngine` on each call's facts and applies the matching actions.

    Actions: `deny` raises `PolicyViolationError`; `abort` fails the session and raises it too;
    `warn` emits `policy.warning`; `emit` emits the named event; `switch_model` changes the
    call's model; `require_approval` waits for `session.provide_input(True/False)` on async calls
    and raises `ApprovalRequiredError` on sync ones, and under a `Checkpoint` with durable
    approvals records a pending approval and ends the run with `ApprovalPendingError` (see
    docs/durable-execution.md); `handoff` raises `HandoffRequested`.

    Args:
        engine: the rules.
        gate: a `QualityGate` attached to every session (used by `session.evaluate_gate`).
        clock: the monotonic clock behind the `elapsed_s` fact (inject a fake one in tests).
        name: the layer's name in its stack.
        kinds: "turn", "tool" or both (default both).
    """

    def __init__(
        self,
        engine: PolicyEngine,
        *,
        gate: QualityGate | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
        kinds: Any = None,
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        self.engine = check_instance("engine", engine, PolicyEngine, "a PolicyEngine")
        self.gate = (
            None if gate is None else check_instance("gate", gate, QualityGate, "a QualityGate")
        )
        self.clock = check_callable("clock", clock, "a callable returning seconds")

    def open_session(self, session: Session) -> None:
        session.meta[_STATE] = _SessionState(self.clock())
        if self.gate is not None:
            self.gate.attach(session)

    def facts(self, call: Call) -> CallFacts:
        """The facts rules see for `call`."""
        return CallFacts(call, self.clock)

    # -- applying actions (sync; approval is the only step that differs) --------------------
    def _apply(self, call: Call, action: Action) -> str | None:
        """Apply one action; returns the approval prompt when a human must be asked."""
        kind, rule = action.kind, action.rule
        if kind == "warn":
            call.emit("policy.warning", detail=action.value, rule=rule)
        elif kind == "emit":
            call.emit(action.value, rule=rule)
        elif kind == "switch_model":
            if call.kind == "turn":
                previous = call.model
                call.set_model(action.value)
                call.emit("policy.model_switched", rule=rule, previous=previous)
        elif kind == "require_approval":
            return action.value
        elif kind == "handoff":
            call.emit("policy.handoff", rule=rule, target_role=action.value)
            raise HandoffRequested(self._handoff(call, action), rule)
        else:  # deny / abort
            call.emit("policy.denied", rule=rule, action=kind)
            if kind == "abort" and call.session is not None:
                call.session.fail("policy.abort")
            raise PolicyViolationError(rule, action.value, kind)
        return None

    @staticmethod
    def _handoff(call: Call, action: Action) -> Handoff:
        agent, session = call.agent, call.session
        return Handoff(
            source_role=agent.role if agent is not None else "unknown",
            target_role=action.value,
            reason=f"policy rule {action.rule}",
            project_id=agent.project_id if agent is not None else None,
            source_session_id=session.id if session is not None else None,
        )

    def _record(self, call: Call, exc: BaseException | None) -> None:
        session = call.session
        state: _SessionState | None = session.meta.get(_STATE) if session is not None else None
        if state is None:
            return
        if exc is None:
            state.consecutive_failures = 0
        elif not isinstance(exc, ControlFlowError):
            state.consecutive_failures += 1
            state.last_failure = _scenario(exc, call.kind)

    # -- hooks: rules decide before the call; its outcome feeds the failure facts ------------
    def before(self, call: Call) -> None:
        for action in self.engine.evaluate(self.facts(call)):
            prompt = self._apply(call, action)
            if prompt is not None and not self._recorded(call, action):
                raise self._approval_required(call, action, prompt)

    async def abefore(self, call: Call) -> None:
        for action in await self.engine.aevaluate(self.facts(call)):
            prompt = self._apply(call, action)
            if prompt is not None and not self._recorded(call, action):
                required = self._approval_required(call, action, prompt)
                if call.session is None or call.approval == "durable":
                    raise required  # durable: Checkpoint records it and ends the run
                self._approved(call, action, prompt, await call.session.wait_for_input(prompt))

    @staticmethod
    def _recorded(call: Call, action: Action) -> bool:
        """A durable approval a human decided (Checkpoint replays the decision) covers it."""
        if call.approval != "approved":
            return False
        call.emit("policy.approved", rule=action.rule, durable=True)
        return True

    def _approval_required(self, call: Call, action: Action, prompt: str) -> ApprovalRequiredError:
        """Announce that a human must approve; the error to raise when nobody can be asked."""
        call.emit("policy.approval_required", rule=action.rule)
        return ApprovalRequiredError(action.rule, prompt)

    def _approved(self, call: Call, action: Action, prompt: str, answer: Any) -> None:
        if answer is not True:
            call.emit("policy.approval_refused", rule=action.rule)
            raise ApprovalRequiredError(action.rule, prompt, refused=True)
        call.emit("policy.approved", rule=action.rule)

    def after(self, call: Call, result: Any) -> Any:
        self._record(call, None)
        return result

    def on_error(self, call: Call, exc: BaseException) -> None:
        self._record(call, exc)
