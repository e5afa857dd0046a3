"""`Guardrails`: input checks before the call, output checks (or redaction) after it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from agentmw._validate import check_choice, check_instance, check_int
from agentmw.core.call import Call
from agentmw.core.middleware import AsyncStreamNext, Middleware, StreamNext, aclose, close
from agentmw.errors import GuardrailViolation
from agentmw.guardrails import Guardrail, Verdict
from agentmw.guardrails.text import output_text, replace_input_texts, with_text
from agentmw.middleware.guardrails.window import GuardedStream

__all__ = ["Guardrails"]

Violations = list[tuple[str, str]]
# Each guard with its async twin of the stage's check (None: the sync check serves both paths).
InputChecks = tuple[tuple[Guardrail, Callable[[Call], Awaitable[Verdict]] | None], ...]
OutputChecks = tuple[tuple[Guardrail, Callable[[Call, Any], Awaitable[Verdict]] | None], ...]


class Guardrails(Middleware):
    """Runs guards on each call's input (before) and output (after); turns and tools.

    Every guard of a stage runs (collect-all). Replacements chain: each guard sees the value the
    previous one produced. Any block raises `GuardrailViolation` with one entry per blocking guard
    and emits `turn.blocked` / `tool.blocked` with `kind="guardrail"`; an input block means the
    function is never called. On the async paths a guard's `acheck_input` / `acheck_output`
    twin is awaited when it has one.

    Streams: output guards see a held-back window of `stream_window` characters (or everything,
    with `"full"`) before chunks reach the consumer; a block closes the upstream stream and
    raises, so violating text is never yielded, and redaction works across chunk borders.
    Guards that need the whole output (`whole_output = True`, like `OutputSchema`) check it once
    the stream has ended, before the last window is released.

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
        self.guards: tuple[Guardrail, ...] = tuple(
            check_instance(
                f"guards[{i}]", g, Guardrail, "a guardrail (name, check_input, check_output)"
            )
            for i, g in enumerate(guards)
        )
        if isinstance(stream_window, str):
            self.stream_window: int | None = None
            check_choice("stream_window", stream_window, ("full",))
        else:
            self.stream_window = check_int("stream_window", stream_window, minimum=1)
        whole = [getattr(g, "whole_output", False) for g in self.guards]
        self._inputs: InputChecks = tuple(
            (g, getattr(g, "acheck_input", None)) for g in self.guards
        )
        outputs = [(g, getattr(g, "acheck_output", None)) for g in self.guards]
        self._outputs: OutputChecks = tuple(outputs)
        self._streamed: OutputChecks = tuple(
            c for c, w in zip(outputs, whole, strict=True) if not w
        )
        self._wholes: OutputChecks = tuple(c for c, w in zip(outputs, whole, strict=True) if w)
        # When every streamed guard names what its findings contain (`stream_trigger`), a
        # window is checked only while such text lies inside it; the rest is released unchecked.
        triggers = [getattr(g, "stream_trigger", None) for g, _ in self._streamed]
        self._trigger: re.Pattern[str] | None = None
        self._overlap = 0
        self._ends: frozenset[str] | None = None
        if triggers and all(isinstance(t, str) and t for t in triggers):
            either = "|".join(f"(?:{t})" for t in dict.fromkeys(triggers))
            self._trigger = re.compile(f"(?s:.*)(?={either})")
            self._overlap = max(int(getattr(g, "stream_overlap", 0)) for g, _ in self._streamed)
            ends = [getattr(g, "stream_ends", None) for g, _ in self._streamed]
            if all(isinstance(e, str) and e for e in ends):
                self._ends = frozenset("".join(e for e in ends if isinstance(e, str)))
        # A lone replace-only guard may say where its first change can start
        # (`stream_first_change`): a window whose changes would all lie in the held-back tail
        # is not checked (they would be kept back until more text arrives anyway).
        self._change: Callable[[str], int | None] | None = None
        if self._trigger is not None and len(self._streamed) == 1:
            change = getattr(self._streamed[0][0], "stream_first_change", None)
            self._change = change if callable(change) else None

    # -- decisions (shared by every path) ------------------------------------------------------
    def _blocked(self, call: Call, stage: str, violations: Violations) -> None:
        if violations:
            names = [name for name, _ in violations]
            call.emit(f"{call.kind}.blocked", kind="guardrail", stage=stage, guards=names)
            raise GuardrailViolation(stage, violations, call.name if call.kind == "tool" else None)

    def _input_verdict(
        self, call: Call, guard: Guardrail, verdict: Verdict, violations: Violations
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
        violations: Violations,
        stream: GuardedStream | None,
    ) -> Any:
        if verdict.action == "block":
            violations.append((guard.name, verdict.reason or "blocked"))
        elif verdict.action == "replace":
            if stream is None:
                call.emit("guardrail.replaced", stage="output", guard=guard.name)
            else:
                # A stream re-checks its window after every chunk: the stream reports a guard
                # once, and only when its replacement is actually released.
                stream.pending.append(guard.name)
            return verdict.value
        return value

    def _rebuild(self, result: Any, text: str | None, value: Any) -> Any:
        if text is not None and isinstance(value, str):
            return result if value == text else with_text(result, value)
        return value  # unchanged structured output, or a parsed value (OutputSchema)

    # -- the checks: each guard's sync check, or its awaited async twin ------------------------
    def _check_output(
        self, call: Call, value: Any, checks: OutputChecks, stream: GuardedStream | None = None
    ) -> Any:
        violations: Violations = []
        for guard, _ in checks:
            verdict = guard.check_output(call, value)
            value = self._output_verdict(call, guard, verdict, value, violations, stream)
        self._blocked(call, "output", violations)
        return value

    async def _acheck_output(
        self, call: Call, value: Any, checks: OutputChecks, stream: GuardedStream | None = None
    ) -> Any:
        violations: Violations = []
        for guard, acheck in checks:
            verdict = await acheck(call, value) if acheck else guard.check_output(call, value)
            value = self._output_verdict(call, guard, verdict, value, violations, stream)
        self._blocked(call, "output", violations)
        return value

    # -- hooks: the input before the call, the output after it ---------------------------------
    def before(self, call: Call) -> None:
        violations: Violations = []
        for guard, _ in self._inputs:
            self._input_verdict(call, guard, guard.check_input(call), violations)
        self._blocked(call, "input", violations)

    async def abefore(self, call: Call) -> None:
        violations: Violations = []
        for guard, acheck in self._inputs:
            verdict = await acheck(call) if acheck else guard.check_input(call)
            self._input_verdict(call, guard, verdict, violations)
        self._blocked(call, "input", violations)

    def after(self, call: Call, result: Any) -> Any:
        text = output_text(result)
        value = self._check_output(call, result if text is None else text, self._outputs)
        return self._rebuild(result, text, value)

    async def aafter(self, call: Call, result: Any) -> Any:
        text = output_text(result)
        value = await self._acheck_output(call, result if text is None else text, self._outputs)
        return self._rebuild(result, text, value)

    # -- streams: the window logic lives in `GuardedStream`; only the checks are awaited -------
    def _stream(self, call: Call) -> GuardedStream:
        return GuardedStream(
            call,
            self.stream_window,
            keep_released=bool(self._wholes),
            trigger=self._trigger,
            overlap=self._overlap,
            ends=self._ends,
            change=self._change,
        )

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        self.before(call)
        gen = call_next(call)
        stream, checks = self._stream(call), self._streamed
        try:
            for chunk in gen:
                released = stream.push_quiet(chunk)
                if released is not None:
                    yield from released
                    continue
                held = stream.held()
                yield from stream.release(held, self._check_output(call, held, checks, stream))
            if not stream.quiet():
                held = stream.held()
                stream.settle(held, self._check_output(call, held, checks, stream))
            if self._wholes:
                self._check_output(call, stream.whole(), self._wholes, stream)
            yield from stream.drain()
        finally:
            close(gen)

    async def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        await self.abefore(call)
        agen = call_next(call)
        stream, checks = self._stream(call), self._streamed
        try:
            async for chunk in agen:
                released = stream.push_quiet(chunk)
                if released is not None:
                    for out in released:
                        yield out
                    continue
                held = stream.held()
                checked = await self._acheck_output(call, held, checks, stream)
                for out in stream.release(held, checked):
                    yield out
            if not stream.quiet():
                held = stream.held()
                stream.settle(held, await self._acheck_output(call, held, checks, stream))
            if self._wholes:
                await self._acheck_output(call, stream.whole(), self._wholes, stream)
            for out in stream.drain():
                yield out
        finally:
            await aclose(agen)

    def __repr__(self) -> str:
        names = ", ".join(g.name for g in self.guards)
        return f"Guardrails(name={self.name!r}, guards=[{names}])"
