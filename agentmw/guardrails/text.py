"""Where the text is: in a call's arguments and in results or stream chunks of any SDK shape.

Input text is a list of slots (string arguments, `messages` text parts, string leaves of tool
arguments) in a fixed walk order, so a guard can return one replacement per slot. Output text is
the message content of a result; `with_text` rebuilds the same shape around new text.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from agentmw.core.call import Call
from agentmw.usage import RESPONSES_TEXT_DELTA

__all__: list[str] = []  # internal helpers of Guardrails

# Keyword arguments that configure the request rather than carry content.
_SKIP_KWARGS = frozenset({"model", "tools", "tool_choice", "response_format", "functions"})
# In a message or content part only these keys carry text.
_TEXT_KEYS = ("content", "text", "input", "arguments")
_MAX_DEPTH = 12


def _walk(value: Any, fn: Callable[[str], str], depth: int = 0) -> Any:
    """`value` with `fn` applied to each text leaf, copied only where something changed."""
    if isinstance(value, str):
        return fn(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        if "role" in value or "type" in value:  # a message or content part
            keys = [k for k in _TEXT_KEYS if k in value]
        else:
            keys = list(value)
        out = None
        for key in keys:
            new = _walk(value[key], fn, depth + 1)
            if new is not value[key]:
                out = dict(value) if out is None else out
                out[key] = new
        return value if out is None else out
    if isinstance(value, (list, tuple)):
        items = [_walk(item, fn, depth + 1) for item in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items) if isinstance(value, tuple) else items
    return value


def input_texts(call: Call) -> list[str]:
    """The text slots of a call's arguments, in walk order."""
    found: list[str] = []

    def collect(text: str) -> str:
        found.append(text)
        return text

    for arg in call.args:
        _walk(arg, collect)
    for key, arg in call.kwargs.items():
        if key not in _SKIP_KWARGS:
            _walk(arg, collect)
    return found


def replace_input_texts(call: Call, texts: list[str]) -> None:
    """Write `texts` (one per slot of `input_texts(call)`) back into copies of the arguments."""
    feed: Iterator[str] = iter(texts)

    def put(old: str) -> str:
        new = next(feed, old)
        return old if new == old else new

    call.args = tuple(_walk(arg, put) for arg in call.args)
    call.kwargs = {
        key: arg if key in _SKIP_KWARGS else _walk(arg, put) for key, arg in call.kwargs.items()
    }


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _first_choice(obj: Any) -> Any:
    choices = _get(obj, "choices")
    if isinstance(choices, (list, tuple)) and choices:
        return choices[0]
    return None


def output_text(result: Any) -> str | None:
    """The text of a result or stream chunk, or None when it carries no text.

    Shapes: `str`; OpenAI `choices[0].message.content` / `choices[0].delta.content`; Anthropic
    `content` text blocks and `delta.text`; Google Gen AI `candidates[0].content.parts` text
    (thoughts left out); anything with a string `.text` (agentmw.testing).
    """
    if isinstance(result, str):
        return result
    if result is None or isinstance(result, (int, float, bool, bytes)):
        return None
    if _is_response(result):
        return _response_text(result)
    kind = _get(result, "type")
    if isinstance(kind, str) and kind.startswith("response.") and kind != RESPONSES_TEXT_DELTA:
        # Responses stream events other than the text delta repeat text already streamed
        # (`.done`, `response.completed`): not new output (the integration rewrites them).
        return None
    parts = _gemini_parts(result)
    if parts is not None:
        texts = [t for t in (_get(p, "text") for p in parts) if isinstance(t, str)]
        return "".join(texts) if texts else None
    choice = _first_choice(result)
    if choice is not None:
        for part in ("message", "delta"):
            content = _get(_get(choice, part), "content")
            if isinstance(content, str):
                return content
        return None
    content = _get(result, "content")
    if isinstance(content, (list, tuple)):
        texts = [_get(b, "text") for b in content if _get(b, "type") in ("text", None)]
        texts = [t for t in texts if isinstance(t, str)]
        return "".join(texts) if texts else None
    if not isinstance(result, Mapping):
        text = getattr(result, "text", None)
        if isinstance(text, str):
            return text
    delta = _get(result, "delta")
    if isinstance(delta, str):
        return delta if _get(result, "type") == RESPONSES_TEXT_DELTA else None
    delta_text = _get(delta, "text")
    return delta_text if isinstance(delta_text, str) else None


def _gemini_parts(result: Any) -> list[Any] | None:
    """The text parts (thoughts left out) of a Google Gen AI response's first candidate."""
    candidates = _get(result, "candidates")
    if not isinstance(candidates, (list, tuple)) or not candidates:
        return None
    parts = _get(_get(candidates[0], "content"), "parts")
    if not isinstance(parts, (list, tuple)):
        return []
    return [p for p in parts if isinstance(_get(p, "text"), str) and not _get(p, "thought")]


def _gemini_with_text(result: Any, text: str) -> Any:
    # The whole new text goes into the first text part; later text parts are emptied.
    candidates = list(_get(result, "candidates"))
    content = _get(candidates[0], "content")
    remaining = [text]
    texts = {id(p) for p in _gemini_parts(result) or ()}
    parts = [
        _set(p, "text", remaining.pop() if remaining else "") if id(p) in texts else p
        for p in _get(content, "parts")
    ]
    candidates[0] = _set(candidates[0], "content", _set(content, "parts", parts))
    return _set(result, "candidates", candidates)


def _is_response(result: Any) -> bool:
    """An OpenAI Responses API result: `object == "response"` with an `output` item list."""
    return _get(result, "object") == "response" and isinstance(_get(result, "output"), list)


def _response_parts(result: Any) -> Iterator[Any]:
    for item in _get(result, "output"):
        if _get(item, "type") == "message":
            for part in _get(item, "content") or ():
                if _get(part, "type") == "output_text":
                    yield part


def _response_text(result: Any) -> str | None:
    texts = [t for t in (_get(p, "text") for p in _response_parts(result)) if isinstance(t, str)]
    return "".join(texts) if texts else None


def _response_with_text(result: Any, text: str) -> Any:
    # The whole new text goes into the first output_text part; later parts are emptied.
    remaining: list[str] = [text]

    def part_text(part: Any) -> Any:
        if _get(part, "type") != "output_text":
            return part
        return _set(part, "text", remaining.pop() if remaining else "")

    items = [
        _set(item, "content", [part_text(p) for p in _get(item, "content") or ()])
        if _get(item, "type") == "message"
        else item
        for item in _get(result, "output")
    ]
    return _set(result, "output", items)


def _set(obj: Any, name: str, value: Any) -> Any:
    """A copy of `obj` with `name` set (dataclasses, pydantic models, dicts, plain objects)."""
    if isinstance(obj, Mapping):
        out = dict(obj)
        out[name] = value
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{name: value})
    model_copy = getattr(obj, "model_copy", None)
    if callable(model_copy):
        return model_copy(update={name: value})
    out = copy.copy(obj)
    setattr(out, name, value)
    return out


def with_text(result: Any, text: str) -> Any:
    """`result` rebuilt with `text` as its text (the original is never mutated)."""
    if isinstance(result, str):
        return text
    if _is_response(result):
        return _response_with_text(result, text)
    if _gemini_parts(result):
        return _gemini_with_text(result, text)
    choice = _first_choice(result)
    if choice is not None:
        part = "message" if _get(choice, "message") is not None else "delta"
        new_choice = _set(choice, part, _set(_get(choice, part), "content", text))
        return _set(result, "choices", [new_choice, *list(_get(result, "choices"))[1:]])
    content = _get(result, "content")
    if isinstance(content, (list, tuple)):
        blocks: list[Any] = []
        placed = False
        for block in content:
            if _get(block, "type") in ("text", None) and isinstance(_get(block, "text"), str):
                if not placed:  # the whole new text goes into the first text block
                    blocks.append(_set(block, "text", text))
                    placed = True
                continue
            blocks.append(block)
        return _set(result, "content", blocks)
    if not isinstance(result, Mapping) and isinstance(getattr(result, "text", None), str):
        return _set(result, "text", text)
    delta = _get(result, "delta")
    if isinstance(delta, str) and _get(result, "type") == RESPONSES_TEXT_DELTA:
        return _set(result, "delta", text)
    if delta is not None and isinstance(_get(delta, "text"), str):
        return _set(result, "delta", _set(delta, "text", text))
    raise TypeError(f"cannot put text into a {type(result).__name__}")
