"""`Limits`: per-session ceilings on turns, tool calls, tokens and cost."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from agentmw._validate import check_optional_int, check_usd
from agentmw.core.call import Call
from agentmw.core.middleware import Middleware
from agentmw.errors import LimitExceededError, MaxIterationsExceededError

_COUNTS = "agentmw.limits.counts"  # + the layer's id: a session's admitted turns and tool calls


class _Counts:
    __slots__ = ("lock", "tools", "turns")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.turns = 0
        self.tools = 0


class Limits(Middleware):
    """Ceilings per session; outside a session it does nothing.

    Turn and tool limits refuse the call that would go past them, before it runs. Token and
    cost limits refuse the next call once the session's usage is past them.

    Args:
        max_turns: most turns per session (`MaxIterationsExceededError` past it).
        max_tool_calls: most tool calls per session.
        max_input_tokens: input tokens after which turns are refused.
        max_output_tokens: output tokens after which turns are refused.
        max_total_tokens: input + output tokens after which turns are refused.
        max_cost_usd: cost after which turns are refused.
    """

    def __init__(
        self,
        max_turns: int | None = None,
        max_tool_calls: int | None = None,
        max_input_tokens: int | None = None,
        max_output_tokens: int | None = None,
        max_total_tokens: int | None = None,
        max_cost_usd: float | Decimal | int | str | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
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

    def _counts(self, call: Call) -> _Counts | None:
        session = call.session
        if session is None:
            return None
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
        counts = self._counts(call)
        session = call.session
        if counts is None or session is None:
            return
        if call.kind == "tool":
            if self.max_tool_calls is not None:
                with counts.lock:
                    # Replayed steps (Checkpoint sits outside this layer) are counted by the
                    # session but never admitted here: start from whichever count is higher.
                    current = max(counts.tools, session.tool_calls)
                    if current + 1 > self.max_tool_calls:
                        error = LimitExceededError(
                            "max_tool_calls", current + 1, self.max_tool_calls
                        )
                        raise self._refuse(call, error)
                    counts.tools = current + 1
            return
        if self._usage_limited:
            self._check_usage(call)
        if self.max_turns is not None:
            with counts.lock:
                current = max(counts.turns, session.iterations)
                if current + 1 > self.max_turns:
                    error = MaxIterationsExceededError("max_turns", current + 1, self.max_turns)
                    raise self._refuse(call, error)
                counts.turns = current + 1

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
