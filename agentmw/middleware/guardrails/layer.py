"""`Guardrails`: input checks before the call, output checks (or redaction) after it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from agentmw.core.call import Call
from agentmw.core.middleware import AsyncNext, AsyncStreamNext, Middleware, Next, StreamNext, aclose
from agentmw.errors import GuardrailViolation
from agentmw.guardrails import Guardrail, Verdict
from agentmw.guardrails.text import output_text, replace_input_texts, with_text
from agentmw.middleware.guardrails.window import OutputWindow

__all__ = ["Guardrails"]

_PENDING, _REPORTED = "guardrails.stream_pending", "guardrails.stream_reported"


class Guardrails(Middleware):
    """Runs guards on each call's input (before) and output (after); turns and tools.

    Every guard of a stage runs (collect-all). Replacements chain: each guard sees the value the
    previous one produced. Any block raises `GuardrailViolation` with one entry per blocking guard
    and emits `turn.blocked` / `tool.blocked` with `kind="guardrail"`; an input block means the
    function is never called.

    Streams: output guards see a held-back window of `stream_window` characters (or everything,
    with `"full"`) before chunks reach the consumer; a block closes the upstream stream and
    raises, so violating text is never yielded, and redaction works across chunk borders.

    Args:
        guards: the guards, in order (objects following the `Guardrail` protocol).
        stream_window: characters held back on streams (int >= 1) or "full".
        name: the layer's name in its stack.
        kinds: "turn", "tool" or both (default both).
    """

    def __init__(
        self,
        guards: Iterable[Guardrail],
        *,
        stream_window: int | str = 64,
        name: str | None = None,
        kinds: Any = None,
    ) -> None:
        super().__init__(name=name, kinds=kinds)
        self.guards = tuple(guards)
        for index, guard in enumerate(self.guards):
            if not isinstance(guard, Guardrail):
                raise TypeError(
                    f"guards[{index}] must have name, check_input and check_output; "
                    f"got {type(guard).__name__}"
                )
        if stream_window != "full" and (type(stream_window) is not int or stream_window < 1):
            raise ValueError(f"stream_window must be an int >= 1 or 'full', got {stream_window!r}")
        self.stream_window: int | None = None if stream_window == "full" else int(stream_window)
        self._whole = any(getattr(g, "whole_output", False) for g in self.guards)
        self._ainput = [getattr(g, "acheck_input", None) for g in self.guards]
        self._aoutput = [getattr(g, "acheck_output", None) for g in self.guards]

    # -- shared, synchronous bookkeeping --------------------------------------------------------
    def _blocked(self, call: Call, stage: str, violations: list[tuple[str, str]]) -> None:
        if violations:
            names = [name for name, _ in violations]
            call.emit(f"{call.kind}.blocked", kind="guardrail", stage=stage, guards=names)
            raise GuardrailViolation(stage, violations, call.name if call.kind == "tool" else None)

    def _input_verdict(
        self, call: Call, guard: Guardrail, verdict: Verdict, violations: list[tuple[str, str]]
    ) -> None:
        if verdict.action == "block":
            violations.append((guard.name, verdict.reason or "blocked"))
        elif verdict.action == "replace":
            texts = [verdict.value] if isinstance(verdict.value, str) else verdict.value
            if not isinstance(texts, list):
                raise TypeError(f"{guard.name}: an input replacement must be a str or a list")
            replace_input_texts(call, texts)
            call.emit("guardrail.replaced", stage="input", guard=guard.name)

    def _output_verdict(
        self,
        call: Call,
        guard: Guardrail,
        verdict: Verdict,
        value: Any,
        violations: list[tuple[str, str]],
    ) -> Any:
        if verdict.action == "block":
            violations.append((guard.name, verdict.reason or "blocked"))
        elif verdict.action == "replace":
            pending = call.meta.get(_PENDING)
            if pending is None:
                call.emit("guardrail.replaced", stage="output", guard=guard.name)
            else:
                # A stream re-checks its window after every chunk: report a guard once, and
                # only when its replacement is actually released (see `_apply`).
                pending.append(guard.name)
            return verdict.value
        return value

    def _rebuild(self, result: Any, text: str | None, value: Any) -> Any:
        if text is not None and isinstance(value, str):
            return result if value == text else with_text(result, value)
        return value  # unchanged structured output, or a parsed value (OutputSchema)

    # -- sync ----------------------------------------------------------------------------------
    def _check_input(self, call: Call) -> None:
        violations: list[tuple[str, str]] = []
        for guard in self.guards:
            self._input_verdict(call, guard, guard.check_input(call), violations)
        self._blocked(call, "input", violations)

    def _check_output(self, call: Call, value: Any, *, stream: bool = False) -> Any:
        violations: list[tuple[str, str]] = []
        for guard in self.guards:
            if stream and getattr(guard, "whole_output", False):
                continue
            verdict = guard.check_output(call, value)
            value = self._output_verdict(call, guard, verdict, value, violations)
        self._blocked(call, "output", violations)
        return value

    def handle(self, call: Call, call_next: Next) -> Any:
        self._check_input(call)
        result = call_next(call)
        text = output_text(result)
        value = self._check_output(call, result if text is None else text)
        return self._rebuild(result, text, value)

    # -- async ---------------------------------------------------------------------------------
    async def _acheck_input(self, call: Call) -> None:
        violations: list[tuple[str, str]] = []
        for guard, acheck in zip(self.guards, self._ainput, strict=True):
            verdict = await acheck(call) if acheck is not None else guard.check_input(call)
            self._input_verdict(call, guard, verdict, violations)
        self._blocked(call, "input", violations)

    async def _acheck_output(self, call: Call, value: Any, *, stream: bool = False) -> Any:
        violations: list[tuple[str, str]] = []
        for guard, acheck in zip(self.guards, self._aoutput, strict=True):
            if stream and getattr(guard, "whole_output", False):
                continue
            if acheck is not None:
                verdict = await acheck(call, value)
            else:
                verdict = guard.check_output(call, value)
            value = self._output_verdict(call, guard, verdict, value, violations)
        self._blocked(call, "output", violations)
        return value

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        await self._acheck_input(call)
        result = await call_next(call)
        text = output_text(result)
        value = await self._acheck_output(call, result if text is None else text)
        return self._rebuild(result, text, value)

    # -- streams -------------------------------------------------------------------------------
    def _window(self, call: Call) -> OutputWindow:
        call.meta[_PENDING] = []
        return OutputWindow(self.stream_window, keep_released=self._whole)

    @staticmethod
    def _mark(call: Call, window: OutputWindow, final: bool) -> str:
        call.stream_offset = window.released_chars
        return window.text()

    def _apply(self, call: Call, window: OutputWindow, held: str, value: Any, final: bool) -> None:
        pending: list[str] = call.meta[_PENDING]
        guards, pending[:] = list(pending), []
        if not isinstance(value, str) or value == held:
            return
        if not final:
            # A change inside the held-back tail may be a partial match (half a card number
            # looks like a phone number): keep the original; it is checked again with more text.
            boundary = len(held) - window.size if window.size is not None else 0
            first = next(
                (i for i, (a, b) in enumerate(zip(held, value, strict=False)) if a != b), None
            )
            if first is None:
                first = min(len(held), len(value))
            if first >= boundary:
                return
        window.set_text(value)
        reported: set[str] = call.meta.setdefault(_REPORTED, set())
        for name in dict.fromkeys(guards):
            if name not in reported:
                reported.add(name)
                call.emit("guardrail.replaced", stage="output", guard=name)

    def _whole_check(self, call: Call, window: OutputWindow, held: str) -> None:
        # Guards that need the whole output (OutputSchema) validate it once, at the end; a
        # parsed replacement cannot be streamed, so only the validation counts here.
        whole = "".join(window.released) + held
        violations: list[tuple[str, str]] = []
        for guard in self.guards:
            if getattr(guard, "whole_output", False):
                self._output_verdict(
                    call, guard, guard.check_output(call, whole), whole, violations
                )
        self._blocked(call, "output", violations)

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        self._check_input(call)
        gen = call_next(call)
        window = self._window(call)
        try:
            for chunk in gen:
                window.push(chunk)
                held = self._mark(call, window, False)
                self._apply(call, window, held, self._check_output(call, held, stream=True), False)
                yield from window.release()
            held = self._mark(call, window, True)
            self._apply(call, window, held, self._check_output(call, held, stream=True), True)
            if self._whole:
                self._whole_check(call, window, window.text())
            yield from window.drain()
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()

    async def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        await self._acheck_input(call)
        agen = call_next(call)
        window = self._window(call)
        try:
            async for chunk in agen:
                window.push(chunk)
                held = self._mark(call, window, False)
                checked = await self._acheck_output(call, held, stream=True)
                self._apply(call, window, held, checked, False)
                for out in window.release():
                    yield out
            held = self._mark(call, window, True)
            checked = await self._acheck_output(call, held, stream=True)
            self._apply(call, window, held, checked, True)
            if self._whole:
                self._whole_check(call, window, window.text())
            for out in window.drain():
                yield out
        finally:
            await aclose(agen)

    def __repr__(self) -> str:
        names = ", ".join(g.name for g in self.guards)
        return f"Guardrails(name={self.name!r}, guards=[{names}])"
