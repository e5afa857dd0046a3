"""Token usage: the `Usage` value and the extraction of usage from model responses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Usage",
    "estimate_usage",
    "extract_usage",
    "usage_from_gemini",
    "usage_from_payload",
]

USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "tool_calls",
)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, or a running total.

    `input_tokens` is the whole input, cache reads and writes included; `reasoning_tokens` are part
    of `output_tokens`. Every field is a non-negative `int`.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    tool_calls: int = 0

    def __post_init__(self) -> None:
        # Fast path (every Usage on the hot path is valid): one chained check, no loop.
        a, b, c = self.input_tokens, self.output_tokens, self.cache_read_tokens
        d, e, f = self.cache_write_tokens, self.reasoning_tokens, self.tool_calls
        if (
            type(a) is int and type(b) is int and type(c) is int
            and type(d) is int and type(e) is int and type(f) is int
            and a >= 0 and b >= 0 and c >= 0 and d >= 0 and e >= 0 and f >= 0
        ):  # fmt: skip
            return
        for name in USAGE_FIELDS:
            value = getattr(self, name)
            # bool is an int subclass, and a float token count is always a bug upstream.
            if type(value) is not int:
                if isinstance(value, int) and not isinstance(value, bool):
                    object.__setattr__(self, name, int(value))
                    continue
                raise TypeError(
                    f"Usage.{name} must be a non-negative int, got {type(value).__name__}"
                )
            if value < 0:
                raise ValueError(f"Usage.{name} must be a non-negative int, got {value}")

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.tool_calls + other.tool_calls,
        )

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, int]:
        """The fields as a plain dict (for events, sinks and summaries)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "tool_calls": self.tool_calls,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Build from `as_dict()` output; unknown keys raise `ValueError` naming them."""
        unknown = set(data) - set(USAGE_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown Usage field(s) {sorted(unknown)}; allowed: {', '.join(USAGE_FIELDS)}"
            )
        return cls(**data)


ZERO_USAGE = Usage()

RESPONSES_TEXT_DELTA = "response.output_text.delta"

UsageExtractor = Callable[[Any], "Usage | None"]


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


def usage_from_payload(payload: Any) -> Usage | None:
    """Normalize an OpenAI- or Anthropic-shaped usage payload (object or dict) to `Usage`.

    Anthropic reports `input_tokens` without cache reads and writes; they are added back so that
    `Usage.input_tokens` is always the whole input. OpenAI's `prompt_tokens` already includes
    `prompt_tokens_details.cached_tokens`.
    """
    if payload is None:
        return None
    if isinstance(payload, Usage):
        return payload
    prompt = _get(payload, "prompt_tokens")
    if prompt is not None or _get(payload, "completion_tokens") is not None:
        pdetails = _get(payload, "prompt_tokens_details")
        cdetails = _get(payload, "completion_tokens_details")
        return Usage(
            input_tokens=_int(prompt),
            output_tokens=_int(_get(payload, "completion_tokens")),
            cache_read_tokens=_int(_get(pdetails, "cached_tokens")) if pdetails else 0,
            reasoning_tokens=_int(_get(cdetails, "reasoning_tokens")) if cdetails else 0,
        )
    inp = _get(payload, "input_tokens")
    out = _get(payload, "output_tokens")
    if inp is None and out is None:
        return None
    cache_write = _int(_get(payload, "cache_creation_input_tokens"))
    cache_read = _int(_get(payload, "cache_read_input_tokens"))
    # OpenAI's Responses API: input_tokens already counts cached ones (input_tokens_details).
    idetails = _get(payload, "input_tokens_details")
    odetails = _get(payload, "output_tokens_details")
    if idetails is not None or odetails is not None:
        return Usage(
            input_tokens=_int(inp),
            output_tokens=_int(out),
            cache_read_tokens=_int(_get(idetails, "cached_tokens")) if idetails else 0,
            reasoning_tokens=_int(_get(odetails, "reasoning_tokens")) if odetails else 0,
        )
    return Usage(
        input_tokens=_int(inp) + cache_read + cache_write,
        output_tokens=_int(out),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def usage_from_gemini(metadata: Any) -> Usage | None:
    """Normalize a Google Gen AI `usage_metadata` (object or dict, snake or camel case).

    `prompt_token_count` already counts the cached tokens and `tool_use_prompt_token_count` is
    input too; thinking tokens (`thoughts_token_count`) are billed as output, so they are added
    to `candidates_token_count` and reported as reasoning tokens.
    """
    if metadata is None:
        return None

    def count(snake: str, camel: str) -> int:
        value = _get(metadata, snake)
        return _int(_get(metadata, camel) if value is None else value)

    prompt = count("prompt_token_count", "promptTokenCount")
    tool_prompt = count("tool_use_prompt_token_count", "toolUsePromptTokenCount")
    candidates = count("candidates_token_count", "candidatesTokenCount")
    thoughts = count("thoughts_token_count", "thoughtsTokenCount")
    return Usage(
        input_tokens=prompt + tool_prompt,
        output_tokens=candidates + thoughts,
        cache_read_tokens=count("cached_content_token_count", "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def extract_usage(result: Any) -> Usage | None:
    """Built-in extraction: a returned `Usage`, or an object/dict carrying `usage`.

    Also Google Gen AI responses and stream chunks (`usage_metadata`). Returns None when the
    result carries no usage (the call then records zero tokens).
    """
    if result is None or isinstance(result, (str, bytes, int, float, bool)):
        return None
    if isinstance(result, Usage):
        return result
    payload = _get(result, "usage")
    if payload is None:
        gemini = _get(result, "usage_metadata")
        if gemini is not None:
            try:
                return usage_from_gemini(gemini)
            except (TypeError, ValueError):
                return None
        # Stream events nest it: Anthropic `message_start.message.usage`, OpenAI Responses
        # `response.completed.response.usage`.
        for key in ("message", "response"):
            nested = _get(result, key)
            if nested is not None and not isinstance(nested, str):
                payload = _get(nested, "usage")
                if payload is not None:
                    break
        else:
            return None
    try:
        return usage_from_payload(payload)
    except (TypeError, ValueError):
        return None


def combine_stream_usage(seen: Usage | None, new: Usage) -> Usage:
    """The usage of a stream so far, given one more chunk's report: field-wise maximum.

    Providers report cumulative counts, split over events: Anthropic's `message_start` carries
    the input, `message_delta` the output so far (its input is absent or the same again); OpenAI
    reports once, on the last chunk. The maximum keeps every count without adding repeats.
    """
    if seen is None:
        return new
    return Usage(
        max(seen.input_tokens, new.input_tokens),
        max(seen.output_tokens, new.output_tokens),
        max(seen.cache_read_tokens, new.cache_read_tokens),
        max(seen.cache_write_tokens, new.cache_write_tokens),
        max(seen.reasoning_tokens, new.reasoning_tokens),
        max(seen.tool_calls, new.tool_calls),
    )


# -- estimates: before a call (rate limits, budget pre-checks) and for streams without usage ----
_MAX_OUTPUT_KWARGS = ("max_tokens", "max_output_tokens", "max_completion_tokens")
_SKIP_KWARGS = frozenset({"model", *_MAX_OUTPUT_KWARGS})


def text_chars(value: Any) -> int:
    """Characters of prompt text in `value`: strings, message lists, content parts."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        total = 0
        for key in ("content", "text", "input", "prompt", "system"):
            item = value.get(key)
            if item is not None:
                total += text_chars(item)
        return total
    if isinstance(value, (list, tuple)):
        return sum(text_chars(item) for item in value)
    content = getattr(value, "content", None)
    return text_chars(content) if isinstance(content, (str, list)) else 0


def estimate_usage(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Usage:
    """The default estimate of a call: prompt characters / 4 in, `max_tokens` (or alike) out."""
    chars = sum(text_chars(a) for a in args)
    chars += sum(text_chars(v) for k, v in kwargs.items() if k not in _SKIP_KWARGS)
    output = 0
    for name in _MAX_OUTPUT_KWARGS:
        value = kwargs.get(name)
        if type(value) is int and value > 0:
            output = value
            break
    return Usage(input_tokens=(chars + 3) // 4, output_tokens=output)


def chunk_chars(chunk: Any) -> int:
    """Characters of generated text in one streamed chunk (str, `.text`, provider deltas)."""
    if isinstance(chunk, str):
        return len(chunk)
    for name in ("text", "content"):
        value = _get(chunk, name)
        if isinstance(value, str):
            return len(value)
    delta = _get(chunk, "delta")  # Anthropic content_block_delta
    if isinstance(delta, str):  # OpenAI Responses `response.output_text.delta`
        return len(delta) if _get(chunk, "type") == RESPONSES_TEXT_DELTA else 0
    if delta is not None:
        value = _get(delta, "text")
        return len(value) if isinstance(value, str) else 0
    choices = _get(chunk, "choices")  # OpenAI chat completion chunk
    if isinstance(choices, (list, tuple)) and choices:
        value = _get(_get(choices[0], "delta"), "content")
        return len(value) if isinstance(value, str) else 0
    return 0


def estimate_stream_usage(args: tuple[Any, ...], kwargs: Mapping[str, Any], chars: int) -> Usage:
    """Usage of a stream that reported none: the prompt estimate in, streamed characters / 4 out."""
    return Usage(
        input_tokens=estimate_usage(args, kwargs).input_tokens, output_tokens=(chars + 3) // 4
    )
