"""Guards for `Guardrails`: the protocol, verdicts and the built-in checks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import TypeAdapter, ValidationError

from ._call import Call
from ._governance_errors import OutputValidationError
from ._text import _walk, input_texts

__all__ = [
    "AllowAll",
    "DenyPatterns",
    "Guardrail",
    "MaxLength",
    "OutputSchema",
    "PIIRedactor",
    "PromptInjectionGuard",
    "TextGuardrail",
    "Verdict",
]

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
    """A check on a call's input and output. May add `acheck_input` / `acheck_output` twins."""

    name: str

    def check_input(self, call: Call) -> Verdict: ...

    def check_output(self, call: Call, value: Any) -> Verdict: ...


def _check_stages(stages: Iterable[str]) -> frozenset[str]:
    chosen = frozenset([stages] if isinstance(stages, str) else stages)
    if not chosen or not chosen <= set(STAGES):
        raise ValueError(f"stages must be a non-empty subset of input, output; got {stages!r}")
    return chosen


class TextGuardrail:
    """Base for guards that look at text: implement `check_text(text, stage, call)`.

    Input checks run on each text slot; output checks on the output text, or on each string
    leaf of a structured (dict/list) output. Replacements are mapped back slot by slot.
    """

    name: ClassVar[str] = "TextGuardrail"
    stages: frozenset[str] = frozenset(STAGES)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def check_text(self, text: str, stage: str, call: Call) -> Verdict:
        """The verdict on one piece of text."""
        return _ALLOW

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
        if "input" not in self.stages:
            return _ALLOW
        return self._texts(input_texts(call), "input", call)

    def check_output(self, call: Call, value: Any) -> Verdict:
        if "output" not in self.stages:
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


class AllowAll(TextGuardrail):
    """Allows everything (a placeholder in configuration and tests)."""

    def check_input(self, call: Call) -> Verdict:
        return _ALLOW

    def check_output(self, call: Call, value: Any) -> Verdict:
        return _ALLOW


class DenyPatterns(TextGuardrail):
    """Blocks text matching any of `patterns` (regular expressions, case-insensitive).

    Args:
        patterns: regular expressions; a match anywhere blocks.
        stages: where to look: "input", "output" or both.
    """

    def __init__(self, patterns: Iterable[str], *, stages: Iterable[str] = STAGES) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        self.patterns = tuple(patterns)
        if not self.patterns:
            raise ValueError("patterns must not be empty")
        try:
            self._rx = [re.compile(p, re.IGNORECASE) for p in self.patterns]
        except re.error as exc:
            raise ValueError(f"patterns holds an invalid regular expression: {exc}") from None
        self.stages = _check_stages(stages)

    def check_text(self, text: str, stage: str, call: Call) -> Verdict:
        for index, rx in enumerate(self._rx):
            if rx.search(text):
                return Verdict.block(f"pattern {index} matched")
        return _ALLOW


class MaxLength(TextGuardrail):
    """Blocks output text longer than `chars` (on streams: the total streamed so far).

    Args:
        chars: the largest allowed length.
        stages: where to check ("output" by default).
    """

    def __init__(self, chars: int, *, stages: Iterable[str] = ("output",)) -> None:
        if type(chars) is not int or chars < 1:
            raise ValueError(f"chars must be a positive int, got {chars!r}")
        self.chars = chars
        self.stages = _check_stages(stages)

    def check_text(self, text: str, stage: str, call: Call) -> Verdict:
        offset = call.meta.get("guardrails.stream_offset", 0) if stage == "output" else 0
        if offset + len(text) > self.chars:
            return Verdict.block(f"longer than {self.chars} chars")
        return _ALLOW


_INJECTION = {
    "ignore_instructions": r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|"
    r"above|earlier|system|all)\b.{0,20}\b(instructions?|prompts?|rules|directions|context)\b",
    "role_override": r"\byou are now\b.{0,40}\b(dan|developer mode|jailbroken|unrestricted|"
    r"no longer)\b|\bact as\b.{0,30}\bwithout (any )?(restrictions|rules|filters)\b",
    "prompt_exfiltration": r"\b(reveal|print|show|repeat|leak)\b.{0,30}\b(system prompt|"
    r"hidden instructions|your instructions|initial prompt)\b",
    "fake_system": r"(<\|im_start\|>\s*system|\[/?(system|inst)\]|^\s*#+\s*system\s*:|"
    r"\bnew (system )?instructions\s*:)",
    "tool_hijack": r"\b(call|invoke|run|execute)\b.{0,30}\b(tool|function|command)\b.{0,60}"
    r"\b(without|do not)\b.{0,20}\b(asking|telling|confirm)",
}


class PromptInjectionGuard(TextGuardrail):
    """Heuristic prompt-injection detection on inputs and on tool outputs.

    Tool outputs are checked because injected text usually arrives through tools (web pages,
    files, e-mails); model outputs are not.

    Args:
        extra_patterns: more regular expressions (case-insensitive) treated as injections.
    """

    def __init__(self, *, extra_patterns: Iterable[str] = ()) -> None:
        patterns = dict(_INJECTION)
        for index, pattern in enumerate(extra_patterns):
            patterns[f"custom_{index}"] = pattern
        self._rx = [(k, re.compile(p, re.IGNORECASE | re.MULTILINE)) for k, p in patterns.items()]

    def check_output(self, call: Call, value: Any) -> Verdict:
        if call.kind != "tool":
            return _ALLOW
        return super().check_output(call, value)

    def check_text(self, text: str, stage: str, call: Call) -> Verdict:
        for label, rx in self._rx:
            if rx.search(text):
                return Verdict.block(f"prompt injection ({label})")
        return _ALLOW


_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


class OutputSchema:
    """Parses and validates the output as `type_` (a pydantic model or any `TypeAdapter` type).

    Text output is parsed as JSON (a surrounding Markdown code fence is ignored); structured
    output is validated as is. On success the parsed value replaces the result. On failure it
    raises `OutputValidationError` (classified `output_invalid`, so Retry can ask again). On
    streams it validates the whole text at the end (use `stream_window="full"` to hold it back).
    """

    whole_output: ClassVar[bool] = True

    def __init__(self, type_: Any, *, name: str | None = None) -> None:
        self.type_ = type_
        self._adapter: TypeAdapter[Any] = TypeAdapter(type_)
        self.target = getattr(type_, "__name__", None) or repr(type_)
        self.name = name or f"OutputSchema[{self.target}]"

    def check_input(self, call: Call) -> Verdict:
        return _ALLOW

    def check_output(self, call: Call, value: Any) -> Verdict:
        try:
            if isinstance(value, str):
                match = _FENCE.match(value)
                parsed = self._adapter.validate_json(match.group(1) if match else value)
            else:
                parsed = self._adapter.validate_python(value)
        except ValidationError as exc:
            raise OutputValidationError(self.target, exc.error_count()) from exc
        except json.JSONDecodeError as exc:  # pragma: no cover - validate_json reports these
            raise OutputValidationError(self.target) from exc
        return Verdict.replace(parsed)


# Defined in its own module (it is large); re-exported here with the other built-ins.
from ._pii import PIIRedactor  # noqa: E402
