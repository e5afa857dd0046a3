"""The guard protocol, verdicts and `TextGuardrail`, the base of the text-checking guards."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from agentmw.core.call import Call
from agentmw.guardrails.text import _walk, input_texts

__all__ = ["Guardrail", "TextGuardrail", "Verdict"]

STAGES = ("input", "output")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's answer: allow, block (with a reason) or replace (redact) the value.

    An input replacement is a list of strings, one per slot of the call's input text, or one
    string when the call has a single slot. An output replacement is the new text (the result is
    rebuilt around it) or any other value, which becomes the result itself.
    """

    action: Literal["allow", "block", "replace"]
    reason: str | None = None
    value: Any = None

    @classmethod
    def allow(cls) -> Verdict:
        return _ALLOW

    @classmethod
    def block(cls, reason: str) -> Verdict:
        return cls("block", reason)

    @classmethod
    def replace(cls, new_value: Any) -> Verdict:
        return cls("replace", None, new_value)


_ALLOW = Verdict("allow")


@runtime_checkable
class Guardrail(Protocol):
    """A check on a call's input and output. May add `acheck_input` / `acheck_output` twins.

    `name` may be a class attribute (the built-ins), an instance attribute or a property.
    """

    @property
    def name(self) -> str: ...

    def check_input(self, call: Call) -> Verdict: ...

    def check_output(self, call: Call, value: Any) -> Verdict: ...


def strings(argument: str, value: Any) -> tuple[str, ...]:
    """One string or an iterable of strings, as a tuple; anything else is a TypeError."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        kind = type(value).__name__
        raise TypeError(f"{argument} must be a string or a list of strings, got {kind}")
    items = tuple(value)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            kind = type(item).__name__
            raise TypeError(f"{argument}[{index}] must be a string, got {kind}")
    return items


def patterns(argument: str, value: Any, flags: int = 0) -> list[re.Pattern[str]]:
    """Compiled regular expressions; an invalid one is a ValueError naming its index."""
    compiled = []
    for index, pattern in enumerate(strings(argument, value)):
        try:
            compiled.append(re.compile(pattern, flags))
        except re.error as exc:
            raise ValueError(
                f"{argument}[{index}] is not a valid regular expression: {exc}"
            ) from None
    return compiled


def _check_stages(stages: Iterable[str] | None) -> frozenset[str] | None:
    if stages is None:
        return None
    chosen = frozenset(strings("stages", stages))
    if not chosen or not chosen <= set(STAGES):
        raise ValueError(f"stages must be a non-empty subset of input, output; got {stages!r}")
    return chosen


class TextGuardrail:
    """Base for guards that look at text: implement `check_text(text, stage, call)`.

    Input checks run on each text slot; output checks on the output text, or on each string
    leaf of a structured (dict/list) output. Replacements are mapped back slot by slot.
    """

    name: ClassVar[str] = "TextGuardrail"
    # The stages checked; None means the per-kind default: turns in and out, tools out only (a
    # tool's arguments are the model's instructions to the world: rewriting them changes what
    # the tool does).
    stages: frozenset[str] | None = frozenset(STAGES)
    # Optional stream fast path: a regular expression such that text with no match of it is
    # always allowed unchanged, every match being at most `stream_overlap + 1` characters long.
    # `Guardrails` then checks a streamed window only while such a match lies inside it.
    stream_trigger: str | None = None
    stream_overlap: int = 0
    # Optional, with `stream_trigger`: characters every trigger match ends with (in ASCII text),
    # so a chunk of ASCII text with none of them needs no scan at all.
    stream_ends: str | None = None
    # Optional, with `stream_trigger`, for a guard that only ever replaces (never blocks):
    # `stream_first_change(piece)` bounds where a check can first change text because of what
    # `piece` holds: for a checked text split into pieces (each with `stream_overlap`
    # characters of the text before it), no change starts before the smallest bound, each
    # relative to its piece's start (negative: before it; `-sys.maxsize`: possibly anywhere
    # before it); None: nothing in the piece can be changed. When such a guard is the only
    # streamed one, `Guardrails` skips checking a window whose first possible change lies in
    # the held-back tail: that change would not be committed before more text arrives anyway.
    stream_first_change: Callable[[str], int | None] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def check_text(self, text: str, stage: str, call: Call) -> Verdict:
        """The verdict on one piece of text."""
        return _ALLOW

    def checks(self, stage: str, call: Call) -> bool:
        """Whether this guard looks at `stage` ("input"/"output") of `call`."""
        stages = self.stages
        if stages is None:
            return stage == "output" or call.kind == "turn"
        return stage in stages

    def _texts(self, texts: list[str], stage: str, call: Call) -> Verdict:
        new: list[str] | None = None
        for index, text in enumerate(texts):
            verdict = self.check_text(text, stage, call)
            if verdict.action == "block":
                return verdict
            if verdict.action == "replace" and verdict.value != text:
                new = list(texts) if new is None else new
                new[index] = verdict.value
        return _ALLOW if new is None else Verdict.replace(new)

    def check_input(self, call: Call) -> Verdict:
        if not self.checks("input", call):
            return _ALLOW
        return self._texts(input_texts(call), "input", call)

    def check_output(self, call: Call, value: Any) -> Verdict:
        if not self.checks("output", call):
            return _ALLOW
        if isinstance(value, str):
            verdict = self.check_text(value, "output", call)
            return verdict if verdict.action != "replace" or verdict.value != value else _ALLOW
        leaves: list[str] = []

        def collect(text: str) -> str:
            leaves.append(text)
            return text

        _walk(value, collect)
        verdict = self._texts(leaves, "output", call)
        if verdict.action != "replace":
            return verdict
        feed = iter(verdict.value)
        return Verdict.replace(_walk(value, lambda t: next(feed, t)))
