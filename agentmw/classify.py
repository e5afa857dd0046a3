"""Failure classification: what went wrong, and is it worth another attempt?"""

from __future__ import annotations

import errno
import functools
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from enum import StrEnum
from typing import Any

from agentmw.errors import ControlFlowError

__all__ = [
    "Failure",
    "FailureScenario",
    "classify_exception",
    "exception_type",
    "failure_class",
    "is_cancellation",
    "parse_retry_after",
]


class FailureScenario(StrEnum):
    """The kinds of failure an agent call can meet."""

    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    CONTEXT_OVERFLOW = "context_overflow"
    CONTENT_FILTERED = "content_filtered"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    TOOL_ERROR = "tool_error"
    DEPENDENCY = "dependency"
    OUTPUT_INVALID = "output_invalid"
    CONTROL_FLOW = "control_flow"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


S = FailureScenario

RETRYABLE = frozenset(
    {
        S.RATE_LIMITED,
        S.OVERLOADED,
        S.SERVER_ERROR,
        S.TIMEOUT,
        S.CONNECTION,
        S.OUTPUT_INVALID,
        S.DEPENDENCY,
    }
)


@dataclass(frozen=True, slots=True)
class Failure:
    """The classification of one exception.

    Attributes:
        scenario: what kind of failure it is.
        retryable: whether another attempt may succeed.
        retry_after: the server's requested delay in seconds, when it sent one.
        status_code: the HTTP status, when the exception carried one.
        exception: the exception that was classified, for predicates such as
            `Retry(on=lambda f: isinstance(f.exception, KeyError))`. Never part of events, the
            repr or equality (its message may hold prompt text or secrets).
    """

    scenario: FailureScenario
    retryable: bool
    retry_after: float | None = None
    status_code: int | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)


_STATUS: dict[int, FailureScenario] = {
    429: S.RATE_LIMITED,
    503: S.OVERLOADED,
    529: S.OVERLOADED,
    500: S.SERVER_ERROR,
    502: S.SERVER_ERROR,
    504: S.SERVER_ERROR,
    408: S.TIMEOUT,
    401: S.AUTH,
    403: S.AUTH,
    404: S.NOT_FOUND,
    400: S.BAD_REQUEST,
    422: S.BAD_REQUEST,
}
_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "content_filtered"})
_CONTEXT_PATTERN = (
    r"context[ _-](?:length|window)|maximum context|prompt is too long|too many tokens"
    r"|input (?:is )?too long|exceeds? the (?:model'?s? )?(?:maximum )?context"
    r"|exceeds the maximum number of tokens"
)
# Message heuristics, tried last. Numbers only match as whole words: "req_429ab" is an id.
_HEURISTIC_PATTERNS = (
    (r"insufficient[_ ]quota|quota (?:exceeded|exhausted)|billing", S.QUOTA_EXHAUSTED),
    (r"rate[ _-]?limit|too many requests|(?<![\w-])429(?![\w-])", S.RATE_LIMITED),
    (r"overloaded|(?<![\w-])(?:503|529)(?![\w-])|service unavailable", S.OVERLOADED),
    (_CONTEXT_PATTERN, S.CONTEXT_OVERFLOW),
    (r"content[ _-](?:filter|policy)|safety system", S.CONTENT_FILTERED),
    (r"timed? ?out|deadline exceeded|(?<![\w-])408(?![\w-])", S.TIMEOUT),
    (r"connection (?:reset|refused|aborted|error)|network (?:is )?unreachable", S.CONNECTION),
    (r"unauthori[sz]ed|invalid api[ _-]?key|authentication|permission denied", S.AUTH),
    (r"internal server error|bad gateway|(?<![\w-])50[024](?![\w-])", S.SERVER_ERROR),
)


class _Regexes:
    """The message patterns, compiled on the first failure that needs them, not at import."""

    def __init__(self) -> None:
        flags = re.IGNORECASE
        self.context = re.compile(_CONTEXT_PATTERN, flags)
        self.quota = re.compile(r"insufficient[_ ]quota|exceeded your current quota", flags)
        self.locked = re.compile(r"database (?:table )?is locked", flags)
        self.delay = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
        self.heuristics = tuple((re.compile(p, flags), s) for p, s in _HEURISTIC_PATTERNS)


@functools.cache
def _regexes() -> _Regexes:
    return _Regexes()


_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED",
        "ECONNRESET",
        "ECONNABORTED",
        "ENETUNREACH",
        "ENETDOWN",
        "EHOSTUNREACH",
        "EHOSTDOWN",
        "ETIMEDOUT",
        "EPIPE",
    )
    if hasattr(errno, name)
)
# SDK and httpx exception classes, recognized by name so no SDK has to be imported.
_TIMEOUT_TYPES = frozenset(
    {
        "TimeoutException",
        "APITimeoutError",
        "ReadTimeout",
        "ConnectTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "Timeout",
    }
)
_CONNECTION_TYPES = frozenset(
    {
        "APIConnectionError",
        "ConnectError",
        "NetworkError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "TransportError",
        "ConnectionError",
        "ProtocolError",
    }
)
_OUTPUT_TYPES = frozenset({"ValidationError", "JSONDecodeError", "OutputValidationError"})
_TOOL_TYPES = frozenset({"ToolError", "ToolException"})
# A local dependency that is briefly unavailable: a full or failing disk, a busy resource.
_DEPENDENCY_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EIO", "EAGAIN", "EBUSY") if hasattr(errno, name)
)
# OpenAI raises this (no HTTP status) when a parsed completion stopped on the content filter.
_FILTER_TYPES = frozenset({"ContentFilterFinishReasonError"})


def _attr(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _status_of(exc: BaseException) -> int | None:
    for candidate in (
        getattr(exc, "status_code", None),
        getattr(exc, "status", None),
        _attr(getattr(exc, "response", None), "status_code"),
        getattr(exc, "code", None),  # google.genai.errors.APIError (and urllib's HTTPError)
    ):
        # IntEnum statuses (http.HTTPStatus) count; bools are ints too but never a status.
        if (
            isinstance(candidate, int)
            and not isinstance(candidate, bool)
            and 100 <= candidate < 600
        ):
            return int(candidate)
    return None


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
        if value is None and isinstance(headers, Mapping):
            value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    except Exception:  # a foreign headers object that does not behave like a mapping
        return None
    return None if value is None else str(value)


def parse_retry_after(headers: Any, *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `retry-after` (seconds or an HTTP date)."""
    raw_ms = _header(headers, "retry-after-ms")
    if raw_ms is not None:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000.0
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        from email.utils import parsedate_to_datetime  # rare: only HTTP-date Retry-After

        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" dates parse naive; HTTP dates are always UTC
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(seconds, 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_codes(exc: BaseException) -> set[str]:
    """Error `code`/`type` strings from the exception and its body (OpenAI/Anthropic shapes)."""
    found: set[str] = set()
    body = getattr(exc, "body", None)
    if body is None:
        body = getattr(exc, "details", None)  # google.genai.errors.APIError: the JSON body
    nested = _attr(body, "error") if body is not None else None
    for source in (exc, body, nested):
        if source is None or isinstance(source, (str, bytes)):
            continue
        for key in ("code", "type", "status"):  # Google: status "RESOURCE_EXHAUSTED"...
            value = _attr(source, key)
            if isinstance(value, str):
                found.add(value.lower())
    return found


def _retry_info(exc: BaseException) -> float | None:
    """The `google.rpc.RetryInfo` delay ("30s") of a Google API error body, if it has one."""
    body = getattr(exc, "details", None)
    details = _attr(_attr(body, "error"), "details") if isinstance(body, Mapping) else None
    if not isinstance(details, list):
        return None
    for item in details:
        delay = _attr(item, "retryDelay") if isinstance(item, Mapping) else None
        found = _regexes().delay.match(delay) if isinstance(delay, str) else None
        if found:
            return float(found.group(1))
    return None


def _from_status(exc: BaseException, status: int) -> Failure:
    headers = _attr(getattr(exc, "response", None), "headers")
    retry_after = parse_retry_after(headers)
    if retry_after is None:
        retry_after = _retry_info(exc)
    codes = _error_codes(exc)
    scenario = _STATUS.get(status)
    if scenario is None:
        scenario = S.SERVER_ERROR if status >= 500 else S.BAD_REQUEST
    retryable = scenario in RETRYABLE or status == 409
    if status == 409:
        scenario = S.UNKNOWN
    if status == 429 and ("insufficient_quota" in codes or _regexes().quota.search(str(exc))):
        scenario, retryable = S.QUOTA_EXHAUSTED, False
    elif scenario is S.BAD_REQUEST:
        if codes & _CONTEXT_CODES or _regexes().context.search(str(exc)):
            scenario = S.CONTEXT_OVERFLOW
        elif codes & _FILTER_CODES:
            scenario = S.CONTENT_FILTERED
    should_retry = _header(headers, "x-should-retry")
    if should_retry is not None and should_retry.strip().lower() in ("true", "false"):
        retryable = should_retry.strip().lower() == "true"
    return Failure(scenario, retryable, retry_after, status)


def _from_type(exc: BaseException) -> FailureScenario | None:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, TimeoutError) or names & _TIMEOUT_TYPES:
        return S.TIMEOUT
    if isinstance(exc, ConnectionError) or names & _CONNECTION_TYPES:
        return S.CONNECTION
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return S.CONNECTION
    if isinstance(exc, OSError) and exc.errno in _DEPENDENCY_ERRNOS:
        return S.DEPENDENCY
    if "OperationalError" in names and _regexes().locked.search(str(exc)):
        return S.DEPENDENCY  # sqlite3 (and SQLAlchemy's wrapper of it) on a locked database
    if names & _OUTPUT_TYPES:  # json.JSONDecodeError among them, matched by name
        return S.OUTPUT_INVALID
    if names & _FILTER_TYPES:
        return S.CONTENT_FILTERED
    if names & _TOOL_TYPES:
        return S.TOOL_ERROR
    return None


def _direct(exc: BaseException) -> Failure | None:
    if isinstance(exc, ControlFlowError):
        return Failure(S.CONTROL_FLOW, False)
    if is_cancellation(exc):
        return Failure(S.CANCELLED, False)
    status = _status_of(exc)
    if status is not None:
        return _from_status(exc, status)
    scenario = _from_type(exc)
    if scenario is not None:
        return Failure(scenario, scenario in RETRYABLE)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` then its causes/contexts, depth first, each once (chains can be cyclic)."""
    seen: set[int] = set()
    order: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        order.append(current)
        for nxt in (current.__context__, current.__cause__):
            if nxt is not None and id(nxt) not in seen:
                stack.append(nxt)
    return order


def classify_exception(exc: BaseException, *, kind: str | None = None) -> Failure:
    """Classify `exc` into a `Failure` (scenario, retryable, retry_after, status_code, exception).

    Order: control flow and cancellation; HTTP status and headers read duck-typed from the
    exception (`status_code`, `status`, `response.status_code`, `response.headers`); exception
    types; then the `__cause__`/`__context__` chain; message heuristics last.

    Args:
        exc: the exception.
        kind: the kind of call that raised it; for "tool", a failure no rule recognizes is a
            `tool_error` (the tool's own bug or refusal), as events, Retry and breakers label it.
    """
    found = _classify(exc)
    scenario = found.scenario
    if kind == "tool" and scenario is S.UNKNOWN and not found.retryable:
        scenario = S.TOOL_ERROR
    return Failure(scenario, found.retryable, found.retry_after, found.status_code, exc)


def _classify(exc: BaseException) -> Failure:
    chain = _chain(exc)
    for link in chain:
        found = _direct(link)
        if found is not None:
            return found
    for link in chain:
        text = str(link)
        for pattern, scenario in _regexes().heuristics:
            if pattern.search(text):
                return Failure(scenario, scenario in RETRYABLE)
    return Failure(S.UNKNOWN, False)


def scenario_predicate(
    value: Any, *, argument: str, default: frozenset[FailureScenario] | None
) -> Callable[[Failure], bool]:
    """A `(Failure) -> bool` from scenarios or a predicate (layer options `on=`, `counts=`).

    `None` selects `default` (or, when that is None, `Failure.retryable`).

    Raises:
        ValueError: `value` is neither a predicate nor an iterable of known scenarios.
    """
    if value is None:
        if default is None:
            return lambda failure: failure.retryable
        return lambda failure: failure.scenario in default
    if callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(
            f"{argument} must be an iterable of FailureScenario or a predicate, got {value!r}"
        )
    try:
        chosen = frozenset(FailureScenario(s) for s in value)
    except ValueError:
        allowed = ", ".join(s.value for s in FailureScenario)
        raise ValueError(f"{argument} holds an unknown scenario; allowed: {allowed}") from None
    return lambda failure: failure.scenario in chosen


def is_cancellation(exc: BaseException) -> bool:
    """`asyncio.CancelledError` or `KeyboardInterrupt`: the run was stopped, nothing failed.

    Reads asyncio from `sys.modules` instead of importing it: without asyncio loaded no
    `CancelledError` can exist, and `import agentmw` stays light.
    """
    if isinstance(exc, KeyboardInterrupt):
        return True
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def exception_type(exc: BaseException) -> str:
    """The qualified type name events and spans carry instead of the message."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def failure_class(exc: BaseException, kind: str | None = None) -> str:
    """The failure class events carry: the scenario `classify_exception` assigns."""
    return classify_exception(exc, kind=kind).scenario.value
