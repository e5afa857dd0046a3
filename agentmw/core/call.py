"""`Call`: the one object that flows through a middleware chain."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from agentmw.events import _EMPTY, Event, has_listeners, notify_listeners
from agentmw.usage import Usage

if TYPE_CHECKING:
    from agentmw.core.agent import Agent
    from agentmw.core.session.session import Session
    from agentmw.pricing.model import ModelPricing

__all__ = ["Call", "CallKind"]

CallKind = Literal["turn", "tool"]
Effects = Literal["pure", "idempotent", "once"]
EFFECTS: tuple[Effects, ...] = ("pure", "idempotent", "once")
LIVE_STREAM = "__agentmw_live_stream__"
"""Set (True) on a generator function whose chunks are live objects, not data (an SDK's
stream events, a framework's response handle): Checkpoint runs such streams live, never
storing or replaying their chunks. The SDK integrations mark theirs through `build_wrapper`."""
EventObserver = Callable[[Event], None]


@dataclass(slots=True, eq=False)
class Call:
    """One logical model turn or tool call on its way through the stack.

    Layers read and may rewrite it: Fallback changes `model` (and the `model` keyword), Retry
    bumps `attempt`, Policy may switch the model, Guardrails may replace `args`/`kwargs`.
    What several layers share is a typed field here; `meta` is scratch that only the layer
    writing a key reads. Build it with keywords or with `new_call` (never by position).

    Attributes:
        kind: "turn" for a model call, "tool" for a tool call.
        name: the function or tool name.
        fn: the wrapped callable (layers may read its return annotation).
        model: the model of a turn (from the decorator, `run_turn(model=)` or a `model=` kwarg).
        args: positional arguments for `fn`.
        kwargs: keyword arguments for `fn`.
        attempt: 1-based attempt number; Retry increments it.
        step: sequence number inside the session (0 outside a session).
        usage: the call's usage, filled after `fn` returns.
        estimate: the usage estimated before the call (rate limits, budget pre-checks).
        session: the session running the call, if any.
        agent: the session's agent, if any.
        meta: per-layer scratch space for this call (each key private to the layer using it).
        stream: True when `fn` is a generator function (the call streams chunks).
        usage_fn: how to read usage from the result (None: built-in extraction).
        cost_usd: the call's cost once known (`agentmw.pricing.call_cost` fills it once;
            Checkpoint sets it when replaying).
        provider: the `gen_ai.provider.name` an SDK integration knows for the call.
        usage_estimated: True when `usage` was estimated (a stream that reported none).
        stream_offset: characters of a streamed output already released to the consumer
            (kept by Guardrails; `MaxLength` counts from it).
        tool_call_id: the provider's id of the tool call being run.
        observers: callables that also receive every event emitted through `emit` (a per-call
            hook, cheaper than a process listener; Telemetry's span uses it).
        idempotency_key: the key a side-effecting function hands to an external API so a
            second attempt is recognized. Checkpoint derives it from the thread id and the
            step, so it is the same on every resume; outside a checkpointed thread the
            terminal makes one per call (the same across Retry's attempts).
        effects: what running the function again does, from `@agent_tool(effects=)`: "pure",
            "idempotent" (the default) or "once" (Checkpoint never reruns an in-flight "once"
            step on its own).
        checkpoint_key: call -> str, from the decorator's `checkpoint_key=`: what Checkpoint
            matches a resumed call on instead of the argument fingerprint.
        takes_idempotency_key: the function declares an `idempotency_key` parameter (the
            terminal passes `idempotency_key` as that keyword).
        approval: how a `require_approval` policy action is answered, set by Checkpoint:
            None (no durable approvals: async calls wait for `provide_input`), "durable"
            (nothing waits in-process: Policy raises `ApprovalRequiredError` and Checkpoint
            records a pending approval) or "approved" (a recorded decision approved the call).
        priced: `(rates, cost)`: the `ModelPricing` that `call_cost` priced the call at and
            the cost it gave (None until then, or when the cost came from elsewhere). A
            session's compact `turn.completed` record keeps the rates, not the cost, while
            `cost_usd` is still that cost: the same `Decimal` is rebuilt when the event is read.
        started_at: the `time.time()` at which the session started the call (its
            `turn.started` / `tool.called` event; 0.0 outside a session).
    """

    kind: CallKind
    name: str
    fn: Callable[..., Any]
    model: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    step: int = 0
    usage: Usage | None = None
    estimate: Usage | None = None
    session: Session | None = None
    agent: Agent | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    usage_fn: Callable[[Any], Usage | None] | None = None
    cost_usd: Decimal | None = None
    provider: str | None = None
    usage_estimated: bool = False
    stream_offset: int = 0
    tool_call_id: str | None = None
    observers: list[EventObserver] | None = None
    idempotency_key: str | None = None
    effects: Effects = "idempotent"
    checkpoint_key: Callable[[Call], str] | None = None
    takes_idempotency_key: bool = False
    approval: str | None = None
    priced: tuple[ModelPricing, Decimal] | None = field(default=None, repr=False)
    started_at: float = 0.0

    def set_model(self, model: str) -> None:
        """Switch the model: updates `model` and, when the function takes one, the `model` kwarg."""
        self.model = model
        if "model" in self.kwargs:
            self.kwargs["model"] = model
            return
        # A defaulted `model` parameter must follow a switch too; if the caller passed it
        # positionally, rewrite that argument rather than adding a clashing keyword.
        slot = _model_slot(self.fn)
        if isinstance(slot, int) and slot < len(self.args):
            self.args = (*self.args[:slot], model, *self.args[slot + 1 :])
        elif slot is not None:
            self.kwargs["model"] = model

    def emit(self, name: str, *, detail: str | None = None, **data: Any) -> None:
        """Emit an event about this call on its session (process listeners only outside one).

        The call's `observers` (e.g. Telemetry's span) see it too.
        """
        session = self.session
        observers = self.observers
        if session is not None:
            event = session.emit(
                name,
                step=self.step,
                model=self.model if self.kind == "turn" else None,
                tool=self.name if self.kind == "tool" else None,
                detail=detail,
                data=data or None,
            )
        elif observers or has_listeners():
            event = Event(
                name, step=self.step, model=self.model, detail=detail, data=data or _EMPTY
            )
            notify_listeners(event)
        else:
            return
        if observers:
            for observer in tuple(observers):
                observer(event)


def new_call(
    kind: CallKind,
    name: str,
    fn: Callable[..., Any],
    *,
    model: str | None = None,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    session: Session | None = None,
    meta: dict[str, Any] | None = None,
    stream: bool = False,
    usage_fn: Callable[[Any], Usage | None] | None = None,
    provider: str | None = None,
    tool_call_id: str | None = None,
    effects: Effects = "idempotent",
    checkpoint_key: Callable[[Call], str] | None = None,
    takes_idempotency_key: bool = False,
) -> Call:
    """A fresh `Call` for one invocation (the agent is the session's).

    The one place that builds a `Call` by position, for speed on the per-call path;
    `tests/core/test_call.py` checks that every argument lands in its field.
    """
    # fmt: off
    return Call(
        kind, name, fn, model, args, {} if kwargs is None else kwargs, 1, 0, None, None, session,
        None if session is None else session.agent, {} if meta is None else meta, stream,
        usage_fn, None, provider, False, 0, tool_call_id, None, None, effects, checkpoint_key,
        takes_idempotency_key,
    )
    # fmt: on


def plain_call(
    kind: CallKind,
    name: str,
    fn: Callable[..., Any],
    model: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    session: Session | None,
    usage_fn: Callable[[Any], Usage | None] | None,
) -> Call:
    """`new_call` with only these fields, by position: the imperative twins' path
    (`session.run_turn`), where keyword binding cost more than the rest of building the call.
    `tests/core/test_new_call.py` checks it against `new_call`."""
    # fmt: off
    return Call(
        kind, name, fn, model, args, kwargs, 1, 0, None, None, session,
        None if session is None else session.agent, {}, False, usage_fn, None, None, False, 0,
        None, None, None, "idempotent", None, False,
    )
    # fmt: on


CallBuilder = Callable[
    [Callable[..., Any], "str | None", "tuple[Any, ...]", "dict[str, Any]", "Session | None",
     "str | None"],
    Call,
]  # fmt: skip


def call_builder(
    kind: CallKind,
    name: str,
    *,
    stream: bool = False,
    usage_fn: Callable[[Any], Usage | None] | None = None,
    provider: str | None = None,
    effects: Effects = "idempotent",
    checkpoint_key: Callable[[Call], str] | None = None,
    takes_idempotency_key: bool = False,
) -> CallBuilder:
    """`new_call` with the fields a decorated function fixes bound once: the decorators' path.

    Returns `build(fn, model, args, kwargs, session, tool_call_id) -> Call`, which builds by
    position with no keyword binding; `tests/core/test_new_call.py` checks it against
    `new_call` and the keyword constructor.
    """

    def build(
        fn: Callable[..., Any],
        model: str | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        session: Session | None,
        tool_call_id: str | None,
    ) -> Call:
        # fmt: off
        return Call(
            kind, name, fn, model, args, kwargs, 1, 0, None, None, session,
            None if session is None else session.agent, {}, stream, usage_fn, None, provider,
            False, 0, tool_call_id, None, None, effects, checkpoint_key, takes_idempotency_key,
        )
        # fmt: on

    return build


def _model_slot(fn: Callable[..., Any]) -> int | str | None:
    """Where `fn` takes its `model`: a positional index, "kw" for keyword-only, or None."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return None
    for index, param in enumerate(params):
        if param.name == "model":
            if param.kind is param.POSITIONAL_OR_KEYWORD:
                return index
            return "kw" if param.kind is param.KEYWORD_ONLY else None
    return None
