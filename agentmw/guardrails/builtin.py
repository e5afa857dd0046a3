"""The built-in guards: allow-all, deny patterns, length, prompt injection, output schema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import TypeAdapter, ValidationError

from agentmw._validate import check_int
from agentmw.core.call import Call
from agentmw.errors import OutputValidationError
from agentmw.guardrails.base import _ALLOW, STAGES, TextGuardrail, Verdict, _check_stages, strings
from agentmw.guardrails.base import patterns as compile_patterns

__all__ = ["AllowAll", "DenyPatterns", "MaxLength", "OutputSchema", "PromptInjectionGuard"]


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
        self.patterns = strings("patterns", patterns)
        if not self.patterns:
            raise ValueError("patterns must not be empty")
        self._rx = compile_patterns("patterns", self.patterns, re.IGNORECASE)
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
        self.chars = check_int("chars", chars, minimum=1)
        self.stages = _check_stages(stages)

    def check_text(self, text: str, stage: str, call: Call) -> Verdict:
        offset = call.stream_offset if stage == "output" else 0
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
        flags = re.IGNORECASE | re.MULTILINE
        extra = compile_patterns("extra_patterns", extra_patterns, flags)
        self._rx = [(k, re.compile(p, flags)) for k, p in _INJECTION.items()]
        self._rx += [(f"custom_{index}", rx) for index, rx in enumerate(extra)]

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
