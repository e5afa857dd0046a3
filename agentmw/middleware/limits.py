"""`Limits`: per-session ceilings on turns, tool calls, tokens and cost."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from agentmw._validate import check_int, check_name, check_optional_int, check_usd
from agentmw.core.call import Call
from agentmw.core.chain import derived_link
from agentmw.core.middleware import PATHS, Middleware, overrides
from agentmw.errors import ControlFlowError, LimitExceededError, MaxIterationsExceededError

_COUNTS = "agentmw.limits.counts"  # + the layer's id: a session's admitted turns and tool calls


class _Counts:
    """One session's admitted turns and tool calls (guarded by the layer's lock)."""

    __slots__ = ("per_tool", "tools", "turns")

    def __init__(self) -> None:
        self.turns = 0
        self.tools = 0
        self.per_tool: dict[str, int] | None = None  # made by the first per-tool admission


def _per_tool(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"per_tool must be a dict of tool name -> most calls, got {type(value).__name__}"
        )
    return {
        check_name("per_tool key", tool): check_int(f"per_tool[{tool!r}]", most, minimum=0)
        for tool, most in value.items()
    }


class Limits(Middleware):
    """Ceilings per session; outside a session it does nothing.

    Turn and tool limits refuse the call that would go past them, before it runs. Token and
    cost limits refuse the next call once the session's usage is past them. A call refused by
    control flow (any `ControlFlowError` from a layer below this one: an open circuit, a rate
    limit or concurrency cap past its wait, a budget, policy, permission or guardrail refusal)
    gives its slot back, so only calls that ran count, as in `Session.iterations`.

    Args:
        max_turns: most turns per session (`MaxIterationsExceededError` past it).
        max_tool_calls: most tool calls per session.
        per_tool: most calls per session of each named tool, e.g. `{"search": 3}`
            (`LimitExceededError` with `limit="per_tool"` and `tool` set past it).
        max_input_tokens: input tokens after which turns are refused.
        max_output_tokens: output tokens after which turns are refused.
        max_total_tokens: input + output tokens after which turns are refused.
        max_cost_usd: cost after which turns are refused.
    """

    order_role = "limits"  # read by the stack's order checks (agentmw.core.order)

    def __init__(
        self,
        max_turns: int | None = None,
        max_tool_calls: int | None = None,
        max_input_tokens: int | None = None,
        max_output_tokens: int | None = None,
        max_total_tokens: int | None = None,
        max_cost_usd: float | Decimal | int | str | None = None,
        *,
        per_tool: Mapping[str, int] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.per_tool = _per_tool(per_tool)
        self.max_turns = check_optional_int("max_turns", max_turns, minimum=0)
        self.max_tool_calls = check_optional_int("max_tool_calls", max_tool_calls, minimum=0)
        self.max_input_tokens = check_optional_int("max_input_tokens", max_input_tokens, minimum=0)
        self.max_output_tokens = check_optional_int(
            "max_output_tokens", max_output_tokens, minimum=0
        )
        self.max_total_tokens = check_optional_int("max_total_tokens", max_total_tokens, minimum=0)
        self.max_cost_usd = (
            None if max_cost_usd is None else check_usd("max_cost_usd", max_cost_usd)
        )
        self._usage_limited = any(
            ceiling is not None
            for ceiling in (
                self.max_input_tokens,
                self.max_output_tokens,
                self.max_total_tokens,
                self.max_cost_usd,
            )
        )
        self._lock = threading.Lock()
        self._meta_key = f"{_COUNTS}:{id(self):x}"

    def compile_link(
        self, mode: str, call_next: Callable[[Call], Any]
    ) -> Callable[[Call], Any] | None:
        # A session's turn under `max_turns` alone (no usage ceilings), admitted inline: the
        # turn branch of `before` in the link's own frame. Anything else takes the hooks.
        if mode not in ("sync", "async") or any(overrides(self, m, Limits) for m in PATHS):
            return None
        slow = derived_link(self, mode, call_next)
        on_error, key, lock = self.on_error, self._meta_key, self._lock

        if mode == "sync":

            def limits(call: Call) -> Any:
                session = call.session
                most = self.max_turns
                if session is None or most is None or call.kind != "turn" or self._usage_limited:
                    return slow(call)
                counts: _Counts | None = session.meta.get(key)
                if counts is None:
                    counts = self._session_counts(session)
                lock.acquire()
                try:
                    current = counts.turns  # `max` inline: a builtin call costs a frame's worth
                    ran = session.iterations
                    if ran > current:
                        current = ran
                    admitted = current + 1 <= most
                    if admitted:
                        counts.turns = current + 1
                finally:
                    lock.release()
                if not admitted:
                    error = MaxIterationsExceededError("max_turns", current + 1, most)
                    raise self._refuse(call, error)
                try:
                    return call_next(call)
                except BaseException as exc:
                    on_error(call, exc)
                    raise

            return limits

        async def alimits(call: Call) -> Any:
            session = call.session
            most = self.max_turns
            if session is None or most is None or call.kind != "turn" or self._usage_limited:
                return await slow(call)
            counts: _Counts | None = session.meta.get(key)
            if counts is None:
                counts = self._session_counts(session)
            lock.acquire()  # as in the sync link
            try:
                current = counts.turns
                ran = session.iterations
                if ran > current:
                    current = ran
                admitted = current + 1 <= most
                if admitted:
                    counts.turns = current + 1
            finally:
                lock.release()
            if not admitted:
                error = MaxIterationsExceededError("max_turns", current + 1, most)
                raise self._refuse(call, error)
            try:
                return await call_next(call)
            except BaseException as exc:
                on_error(call, exc)
                raise

        return alimits

    def _counts(self, call: Call) -> _Counts | None:
        session = call.session
        return None if session is None else self._session_counts(session)

    def _session_counts(self, session: Any) -> _Counts:
        counts: _Counts | None = session.meta.get(self._meta_key)
        if counts is None:
            with self._lock:
                counts = session.meta.setdefault(self._meta_key, _Counts())
        return counts

    def _refuse(self, call: Call, error: LimitExceededError) -> LimitExceededError:
        call.emit(
            "limit.exceeded",
            limit=error.limit,
            observed=str(error.observed),
            ceiling=str(error.ceiling),
        )
        return error

    def before(self, call: Call) -> None:
        session = call.session
        if session is None:
            return
        counts: _Counts | None = session.meta.get(self._meta_key)
        if counts is None:
            counts = self._session_counts(session)
        if call.kind == "tool":
            if self.max_tool_calls is not None or self.per_tool:
                self._admit_tool(call, counts, session)
            return
        if self._usage_limited:
            self._check_usage(call)
        if self.max_turns is not None:
            lock = self._lock  # acquire/release: `with` makes two bound methods a call
            lock.acquire()
            try:
                current = max(counts.turns, session.iterations)
                admitted = current + 1 <= self.max_turns
                if admitted:
                    counts.turns = current + 1
            finally:
                lock.release()
            if not admitted:  # announced outside the lock: sinks and listeners are user code
                error = MaxIterationsExceededError("max_turns", current + 1, self.max_turns)
                raise self._refuse(call, error)

    def _admit_tool(self, call: Call, counts: _Counts, session: Any) -> None:
        tool, most = call.name, self.per_tool.get(call.name)
        error: LimitExceededError | None = None
        with self._lock:
            # Replayed steps (Checkpoint sits outside this layer) are counted by the session
            # but never admitted here: start from whichever count is higher.
            current = max(counts.tools, session.tool_calls)
            mine = 0
            if most is not None:
                admitted = counts.per_tool
                mine = max(admitted.get(tool, 0) if admitted else 0, session.tool_count(tool))
            if self.max_tool_calls is not None and current + 1 > self.max_tool_calls:
                error = LimitExceededError("max_tool_calls", current + 1, self.max_tool_calls)
            elif most is not None and mine + 1 > most:
                error = LimitExceededError("per_tool", mine + 1, most, tool=tool)
            else:
                if most is not None:
                    if counts.per_tool is None:
                        counts.per_tool = {}
                    counts.per_tool[tool] = mine + 1
                counts.tools = current + 1
        if error is not None:  # announced outside the lock: sinks and listeners are user code
            raise self._refuse(call, error)

    def on_error(self, call: Call, exc: BaseException) -> None:
        # A refusal below this layer (the call never ran) gives back the slot `before` took.
        if not isinstance(exc, ControlFlowError):
            return
        counts = self._counts(call)
        if counts is None:
            return
        with self._lock:
            if call.kind == "turn":
                if self.max_turns is not None:
                    counts.turns -= 1
            else:
                if self.max_tool_calls is not None or self.per_tool:
                    counts.tools -= 1
                if call.name in self.per_tool and counts.per_tool is not None:
                    counts.per_tool[call.name] -= 1

    def _check_usage(self, call: Call) -> None:
        session = call.session
        assert session is not None
        usage = session.usage
        checks: tuple[tuple[str, Any, Any], ...] = (
            ("max_input_tokens", usage.input_tokens, self.max_input_tokens),
            ("max_output_tokens", usage.output_tokens, self.max_output_tokens),
            ("max_total_tokens", usage.total_tokens, self.max_total_tokens),
            ("max_cost_usd", session.cost_usd, self.max_cost_usd),
        )
        for limit, observed, ceiling in checks:
            if ceiling is not None and observed > ceiling:
                raise self._refuse(call, LimitExceededError(limit, observed, ceiling))
