"""Every public exception of agentmw: one base, and a marker for control flow.

`ControlFlowError` subclasses steer the loop (a budget, a permission, a limit, an open circuit):
Retry never retries them, circuit breakers never count them and sessions never count them as
turns or tool calls. Each error carries structured fields, never prompt text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentmw.core.handoff import Handoff

__all__ = [
    "AgentMWError",
    "ApprovalPendingError",
    "ApprovalRejectedError",
    "ApprovalRequiredError",
    "BudgetExceededError",
    "CheckpointCorruptError",
    "CheckpointSchemaError",
    "CircuitOpenError",
    "ConcurrencyLimitError",
    "ControlFlowError",
    "DocumentError",
    "GuardrailViolation",
    "HandoffRequested",
    "InFlightStepError",
    "InvalidTransitionError",
    "LimitExceededError",
    "MaxIterationsExceededError",
    "NoSessionError",
    "OutputValidationError",
    "OutsideSessionWarning",
    "PermissionDeniedError",
    "PolicyViolationError",
    "PricingMissingError",
    "RateLimitedError",
    "ReplayDivergedError",
    "ScriptExhaustedError",
    "SessionClosedError",
    "SessionStateError",
    "SinkSchemaError",
    "StackOrderWarning",
    "ToolResultError",
    "TurnTimeoutError",
    "UninstrumentedCallWarning",
]


def _rebuild(cls: type[AgentMWError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Unpickle an agentmw error without calling its `__init__` (see `AgentMWError`)."""
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class AgentMWError(Exception):
    """Base class of every error agentmw raises.

    Errors pickle with their fields (their `__init__` takes fields, not the message), so an
    engine that records a failed step, such as DBOS, can raise it again on recovery.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ControlFlowError(AgentMWError):
    """Marker base for errors that steer the loop rather than report a broken call.

    Budget exceeded, permission denied, guardrail violation, policy violation, an open circuit,
    max iterations, replay divergence: retry never retries these and circuit breakers never count
    them.
    """


class InvalidTransitionError(AgentMWError):
    """A lifecycle transition that the state machine does not allow."""

    def __init__(self, current: Any, target: Any) -> None:
        self.current = current
        self.target = target
        super().__init__(f"cannot move a session from {current.value} to {target.value}")


class SessionStateError(AgentMWError):
    """A turn or tool call on a session that is not running."""

    def __init__(self, session_id: str, state: Any, message: str | None = None) -> None:
        self.session_id = session_id
        self.state = state
        super().__init__(message or f"session {session_id} is {state.value}")


class SessionClosedError(SessionStateError, ControlFlowError):
    """A turn or tool call on a session that has already finished."""

    def __init__(self, session_id: str, state: Any) -> None:
        super().__init__(
            session_id, state, f"session {session_id} is {state.value}; open a new session"
        )


class TurnTimeoutError(AgentMWError, TimeoutError):
    """One attempt ran past its deadline (raised by the `Timeout` layer)."""

    def __init__(self, seconds: float, name: str | None = None) -> None:
        self.seconds = seconds
        self.name = name
        what = f"{name!r}" if name else "call"
        super().__init__(f"{what} did not finish within {seconds:g}s")


class BudgetExceededError(ControlFlowError):
    """A call was refused because the budget is spent (or the call would overspend it).

    Attributes:
        budget_usd: the budget.
        spent_usd: what had been spent when the call was refused.
        reserved_usd: the worst cases of other calls in flight at that moment (an enforced
            budget reserves each call's worst case before it runs); 0 when none were.
        estimate_usd: this call's worst case (its reservation), or None when it was not
            estimated (`precheck=False`). The message says "is spent" when `spent_usd` is
            already past the budget, and names the estimate otherwise.
    """

    def __init__(
        self,
        budget_usd: Any,
        spent_usd: Any,
        *,
        estimate_usd: Any = None,
        reserved_usd: Any = 0,
    ) -> None:
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.estimate_usd = estimate_usd
        in_flight = f", ${reserved_usd} reserved by calls in flight" if reserved_usd else ""
        if estimate_usd is None or _past(spent_usd, budget_usd):
            message = f"budget of ${budget_usd} is spent (${spent_usd} so far{in_flight})"
        else:
            message = (
                f"a call estimated at ${estimate_usd} would overspend the budget of ${budget_usd}"
                f" (${spent_usd} spent so far{in_flight})"
            )
        super().__init__(message)


def _past(spent: Any, budget: Any) -> bool:
    try:
        return bool(spent > budget)
    except TypeError:
        return False


class PricingMissingError(ControlFlowError):
    """An enforced `Budget` refused a turn whose model has no price (fail-closed pricing).

    A model without a price would cost $0 and never trip the budget, so the turn is refused
    before it runs.

    Attributes:
        model: the model that has no price (None when the turn named no model).
    """

    def __init__(self, model: str | None) -> None:
        self.model = model
        what = f"model {model!r} has no price" if model else "the turn names no model to price"
        super().__init__(
            f"{what}: an enforced Budget refuses unpriced turns. Price it with"
            f" register_pricing({model or 'model'!r}, ...), a price file"
            " (load_pricing_from_file(path), or the agent's table .load_file(path)),"
            " or PricingTable.from_genai_prices(); or pass Budget(..., unpriced='allow') to"
            " let such turns count as $0"
        )


class RateLimitedError(ControlFlowError):
    """A rate-limit reservation could not be granted in time.

    Attributes:
        retry_after: seconds until the reservation could be granted, or None when it never can
            (a request larger than the burst).
    """

    def __init__(self, retry_after: float | None, message: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(
            message or f"rate limit: the reservation needs a wait of {retry_after:.3f}s"
        )


class ConcurrencyLimitError(ControlFlowError):
    """Every slot of a concurrency cap stayed taken for longer than `max_wait`.

    Its own type rather than a `RateLimitedError`: a rate limit knows when it frees up
    (`retry_after` is exact there), a cap frees up whenever a holder finishes.

    Attributes:
        key: the capped key (usually the model).
        limit: the cap (`max_in_flight`).
        waited: seconds the call waited before it was refused.
        retry_after: a pause worth making before trying again when one is known (Redis
            unreachable under `on_unavailable="deny"`: the store's retry interval), else None:
            a slot frees up when some holder finishes.
        reason: "max_wait" (the wait ran out) or "unavailable" (the store refused).
    """

    def __init__(
        self,
        key: str,
        limit: int,
        *,
        waited: float = 0.0,
        retry_after: float | None = None,
        reason: str = "max_wait",
    ) -> None:
        self.key = key
        self.limit = limit
        self.waited = waited
        self.retry_after = retry_after
        self.reason = reason
        why = (
            f"no slot freed within {waited:.3f}s (max_wait)"
            if reason == "max_wait"
            else "its store is unavailable and refuses"
        )
        super().__init__(f"concurrency cap of {limit} for key {key!r}: {why}")


class CircuitOpenError(ControlFlowError):
    """A circuit breaker refused the call without making it.

    Attributes:
        name: the breaker's name.
        key: the state key (usually the model, or the tool name).
        retry_after: seconds until the breaker lets a probe through (0 when probes are busy).
    """

    def __init__(self, name: str, key: str, retry_after: float) -> None:
        self.name = name
        self.key = key
        self.retry_after = retry_after
        super().__init__(f"circuit {name!r} is open for {key!r}; retry after {retry_after:.3g}s")


class PermissionDeniedError(ControlFlowError):
    """A role may not call a tool (raised by `Permissions` before the tool runs).

    Attributes:
        role: the calling agent's role (None outside a session).
        tool: the tool that was refused.
        reason: why, e.g. "denied by pattern 'fs.*'".
    """

    def __init__(self, role: str | None, tool: str, reason: str) -> None:
        self.role = role
        self.tool = tool
        self.reason = reason
        super().__init__(f"role {role!r} may not call tool {tool!r}: {reason}")


class GuardrailViolation(ControlFlowError):
    """One or more guards blocked a call's input or output.

    Attributes:
        stage: "input" or "output".
        violations: one `(guard name, reason)` pair per blocking guard, in guard order.
        tool: the tool name for tool calls, else None.
    """

    def __init__(
        self, stage: str, violations: Sequence[tuple[str, str]], tool: str | None = None
    ) -> None:
        self.stage = stage
        self.violations: tuple[tuple[str, str], ...] = tuple(violations)
        self.tool = tool
        names = ", ".join(name for name, _ in self.violations)
        where = f" of tool {tool!r}" if tool else ""
        super().__init__(f"{stage}{where} blocked by {names}")

    @property
    def guards(self) -> list[str]:
        """The names of the blocking guards."""
        return [name for name, _ in self.violations]


class PolicyViolationError(ControlFlowError):
    """A policy rule denied or aborted the call.

    Attributes:
        rule: the name of the rule whose action fired.
        reason: the reason the rule gives.
        action: "deny" or "abort".
    """

    def __init__(self, rule: str, reason: str, action: str = "deny") -> None:
        self.rule = rule
        self.reason = reason
        self.action = action
        super().__init__(f"policy rule {rule!r} ({action}): {reason}")


class ApprovalRequiredError(ControlFlowError):
    """A rule requires human approval and the call runs synchronously (it cannot wait).

    Async calls wait in WAITING_FOR_INPUT instead; a refused approval raises this too.

    Attributes:
        rule: the rule requiring approval.
        prompt: the question put to the human.
        refused: True when a human answered no (async), False when nobody could be asked.
    """

    def __init__(self, rule: str, prompt: str, *, refused: bool = False) -> None:
        self.rule = rule
        self.prompt = prompt
        self.refused = refused
        verb = "was refused" if refused else "requires approval (run the call async to wait)"
        super().__init__(f"policy rule {rule!r} {verb}")


class ApprovalPendingError(ControlFlowError):
    """A call in a checkpointed session needs a human's approval and nothing in this process
    waits for one: the approval is recorded as pending and the run stops here.

    Decide with `saver.resolve_approval(thread_id, step, "approve" | "reject" | "edit")` or
    `agentmw approvals approve|reject|edit THREAD STEP --db DB`, then open a session with the
    same `thread_id` again: it continues from this call without re-running earlier steps.

    Attributes:
        thread_id: the durable thread.
        step: the call's step number inside the thread.
        kind: "turn" or "tool".
        name: the tool's (or turn's) name.
        rule: the policy rule requiring approval.
        prompt: the question put to the human (never part of the message).
    """

    def __init__(
        self, thread_id: str, step: int, kind: str, name: str, rule: str, prompt: str
    ) -> None:
        self.thread_id = thread_id
        self.step = step
        self.kind = kind
        self.name = name
        self.rule = rule
        self.prompt = prompt
        super().__init__(
            f"{kind} {name!r} (thread {thread_id!r}, step {step}) waits for approval under "
            f"policy rule {rule!r}: decide with saver.resolve_approval({thread_id!r}, {step}, "
            f'"approve" | "reject" | "edit") (CLI: agentmw approvals approve|reject|edit '
            f"{thread_id} {step} --db DB), then resume the thread"
        )


class ApprovalRejectedError(ControlFlowError):
    """A human rejected the call a durable approval asked about (`resolve_approval(...,
    "reject")`); the resumed run meets this instead of the call.

    Attributes:
        thread_id: the durable thread.
        step: the call's step number inside the thread.
        kind: "turn" or "tool".
        name: the tool's (or turn's) name.
        rule: the policy rule that required approval.
        note: the reviewer's note, if any (never part of the message).
    """

    def __init__(
        self, thread_id: str, step: int, kind: str, name: str, rule: str, note: str | None = None
    ) -> None:
        self.thread_id = thread_id
        self.step = step
        self.kind = kind
        self.name = name
        self.rule = rule
        self.note = note
        super().__init__(
            f"{kind} {name!r} (thread {thread_id!r}, step {step}) was rejected by its reviewer "
            f"(policy rule {rule!r})"
        )


class HandoffRequested(ControlFlowError):
    """A policy rule hands the work to another role; the agent loop catches this.

    Attributes:
        handoff: the `Handoff` to pass on.
        rule: the rule that asked for it.
    """

    def __init__(self, handoff: Handoff, rule: str) -> None:
        self.handoff = handoff
        self.rule = rule
        super().__init__(f"policy rule {rule!r} hands off to {handoff.target_role!r}")


class OutputValidationError(AgentMWError):
    """A call's output did not parse or validate (classified `output_invalid`, so Retry re-asks).

    Not a control-flow error on purpose: asking the model again is the usual fix.

    Attributes:
        target: the name of the expected type.
        errors: the validation error count (details stay out of events).
    """

    def __init__(self, target: str, errors: int = 1, detail: Any = None) -> None:
        self.target = target
        self.errors = errors
        self.detail = detail
        super().__init__(f"output does not validate as {target} ({errors} error(s))")


class ToolResultError(AgentMWError):
    """A tool answered with an error result instead of raising (an MCP `is_error=True` result).

    Raised inside the chain only, so Telemetry, CircuitBreaker, Retry and the session count
    the call as failed (`tool.failed`, classified `tool_error`); the adapter then returns the
    result to its caller as the framework would (`agentmw.integrations.mcp`).

    Attributes:
        tool: the tool's name.
        result: the error result itself.
    """

    def __init__(self, tool: str, result: Any) -> None:
        self.tool = tool
        self.result = result
        super().__init__(f"tool {tool!r} returned an error result")


class DocumentError(AgentMWError, ValueError):
    """A configuration document (policy, permissions) is malformed; nothing of it was applied.

    The message names the document (its file, when it came from one) and lists the first
    `SHOWN` problems, then how many more there are.

    Attributes:
        what: the document, e.g. "policy document /etc/agentmw/policy.yaml".
        path: where the first problem is, e.g. `rules[0].then[1].reason` ("" for the whole file).
        problems: every `(path, message)` pair found.
    """

    SHOWN = 20

    def __init__(self, what: str, problems: list[tuple[str, str]]) -> None:
        self.what = what
        self.problems = problems
        self.path = problems[0][0] if problems else ""
        lines = "; ".join(f"{p or '<document>'}: {m}" for p, m in problems[: self.SHOWN])
        more = len(problems) - self.SHOWN
        if more > 0:
            lines += f"; and {more} more"
        super().__init__(f"invalid {what}: {lines}")


class LimitExceededError(ControlFlowError):
    """A session limit refused a call.

    Attributes:
        limit: the limit's name ("max_tool_calls", "per_tool", "max_total_tokens"...).
        observed: the count the call would reach (turns, tools) or the amount already used.
        ceiling: the configured limit.
        tool: the tool whose own limit (`Limits(per_tool=...)`) refused the call, else None.
    """

    def __init__(self, limit: str, observed: Any, ceiling: Any, *, tool: str | None = None) -> None:
        self.limit = limit
        self.observed = observed
        self.ceiling = ceiling
        self.tool = tool
        what = limit if tool is None else f"{limit} limit of tool {tool!r}"
        super().__init__(f"{what} reached: {observed} > {ceiling}")


class MaxIterationsExceededError(LimitExceededError):
    """`max_turns` refused another turn."""


class ReplayDivergedError(ControlFlowError):
    """A resumed session issued a call that its checkpoint does not have where it should.

    Attributes:
        step: the recorded step that was expected.
        expected: "kind name #fingerprint" of that record.
        got: the same description of the call that arrived.
    """

    def __init__(self, step: int, expected: str, got: str) -> None:
        self.step = step
        self.expected = expected
        self.got = got
        super().__init__(f"replay diverged at step {step}: expected {expected}, got {got}")


class InFlightStepError(ControlFlowError):
    """A resumed thread reached a step that was in flight when its run stopped, and the tool
    runs at most once (`@agent_tool(effects="once")`): agentmw cannot know whether it took
    effect, so it neither reruns nor skips it.

    Attributes:
        step: the step number inside the thread.
        name: the tool's name.
        idempotency_key: the key the interrupted call ran with (look it up at the external
            service to learn whether it took effect).
        thread_id: the thread, when known.
    """

    def __init__(
        self, step: int, name: str, idempotency_key: str, *, thread_id: str | None = None
    ) -> None:
        self.step = step
        self.name = name
        self.idempotency_key = idempotency_key
        self.thread_id = thread_id
        thread = "THREAD" if thread_id is None else thread_id
        super().__init__(
            f"step {step} ({name!r}, idempotency key {idempotency_key}) was in flight when the "
            "run stopped, and it runs once: check whether it took effect, then mark it done "
            f"with saver.resolve_step({thread!r}, {step}, result=...) or let it run again with "
            f"saver.resolve_step({thread!r}, {step}, rerun=True) (CLI: agentmw steps resolve "
            f"{thread} {step} --db DB --result JSON | --rerun); "
            'Checkpoint(on_in_flight="rerun") reruns such steps without asking'
        )


class CheckpointCorruptError(AgentMWError):
    """A stored checkpoint record cannot be read back.

    Attributes:
        thread_id: the thread holding the record.
        step: the record's step number (None for the session snapshot).
        reason: what is wrong (a type or field name, never stored content).
    """

    def __init__(self, thread_id: str, step: int | None, reason: str) -> None:
        self.thread_id = thread_id
        self.step = step
        self.reason = reason
        where = f"step {step}" if step is not None else "the session snapshot"
        super().__init__(f"checkpoint of thread {thread_id!r}, {where}, is corrupt: {reason}")


class CheckpointSchemaError(AgentMWError):
    """A checkpoint database has another schema version, or is not an agentmw database."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"checkpoint store {where}: {reason}")


class SinkSchemaError(AgentMWError):
    """The store holds something other than this version of agentmw's sink tables.

    Attributes:
        location: the file path or table prefix that was checked.
    """

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        super().__init__(f"{location}: {reason}")


class ScriptExhaustedError(AgentMWError):
    """A `ScriptedModel` was called more times than it has entries."""


class UninstrumentedCallWarning(RuntimeWarning):
    """An instrumented SDK client made a model call that agentmw does not run through a stack.

    Raised once per client (and the clients derived from it) and method, naming the method: the
    call ran outside the stack (no budget, guardrail, limit or span). Decorate your own wrapper
    of that method with `@agent_turn`, or filter the warning if the call is meant to bypass.

    Attributes:
        method: the SDK method, e.g. "images.generate".
    """

    def __init__(self, method: str, sdk: str) -> None:
        self.method = method
        self.sdk = sdk
        super().__init__(
            f"{sdk} {method}() is not covered by agentmw.integrations.instrument: this call "
            "runs outside the stack (no budget, guardrail, limit or span); wrap it in a function "
            "decorated with @agent_turn to run it as a turn"
        )


class NoSessionError(ControlFlowError):
    """A decorated call ran with no current session while a session is open in the process.

    Raised under `agentmw.configure(outside_session="error")` (the default only warns, with
    `OutsideSessionWarning`): the call would escape that session's budget, limits and
    accounting, usually because it runs in a worker thread the session did not follow.

    Attributes:
        function: the decorated function's call name.
    """

    def __init__(self, function: str) -> None:
        self.function = function
        super().__init__(f"{function!r} {_outside_session_fix()}")


class OutsideSessionWarning(RuntimeWarning):
    """A decorated call ran with no current session while a session is open in the process.

    Warned once per decorated function (`agentmw.configure(outside_session="warn")`, the
    default): the call runs under the process default stack and counts in no session, so that
    session's budget, limits and usage do not see it.

    Attributes:
        function: the decorated function's call name.
    """

    def __init__(self, function: str) -> None:
        self.function = function
        super().__init__(f"{function!r} {_outside_session_fix()}")


def _outside_session_fix() -> str:
    """The rest of the outside-session message: what happened and the fixes (internal)."""
    return (
        "ran outside any session while a session is open (a worker thread without the "
        "session?): its turns, cost and limits count nowhere. Run the work in the session with "
        "session.bind(fn), session.executor() or contextvars.copy_context().run(...), or "
        "silence this with agentmw.configure(outside_session='allow')"
    )


class StackOrderWarning(UserWarning):
    """A stack's order breaks one of its layers' guarantees (see `Stack.check`).

    The message names both layers and the fix; `Stack(..., check=False)` accepts a deliberate
    order without the warning.

    Attributes:
        outer: the name of the outer layer of the pair.
        inner: the name of the inner layer of the pair.
    """

    def __init__(self, message: str, outer: str, inner: str) -> None:
        self.outer = outer
        self.inner = inner
        super().__init__(message)
