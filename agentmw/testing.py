"""Test helpers: a scripted model, an injectable clock and event capture."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agentmw._validate import check_bool, check_int, check_name, check_number
from agentmw.core.call import Call
from agentmw.core.middleware import Middleware
from agentmw.errors import ScriptExhaustedError
from agentmw.events import Event, add_listener, remove_listener
from agentmw.usage import Usage

__all__ = [
    "CapturedEvents",
    "Chunk",
    "FakeClock",
    "RecordingMiddleware",
    "Reply",
    "ScriptExhaustedError",
    "ScriptedModel",
    "capture_events",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted model response: text, usage and optional tool calls."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish_reason: str = "stop"

    @property
    def content(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Chunk:
    """One streamed piece of a scripted reply; the last chunk carries the usage."""

    text: str
    usage: Usage | None = None


def _text_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    total = 0
    for value in (*args, *kwargs.values()):
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list):
            for item in value:
                content = item.get("content") if isinstance(item, dict) else None
                if isinstance(content, str):
                    total += len(content)
    return total


ScriptItem = str | Reply | BaseException | type[BaseException] | Callable[..., Any]


class ScriptedModel:
    """A deterministic stand-in for a model: returns scripted replies or raises scripted errors.

    Entries are consumed in order: a `str` or `Reply` is returned (a `str` becomes a `Reply` with
    usage of about one token per four characters), an exception instance or class is raised, and a
    callable is called with the call's arguments and its result used as the entry. Thread-safe.

    Forms: `model(...)`, `await model.acall(...)`, `model.stream(...)`, `model.astream(...)`.
    Each call is recorded in `calls` as `(args, kwargs)`.
    """

    def __init__(
        self,
        script: Iterable[ScriptItem],
        *,
        model: str = "scripted-model",
        repeat_last: bool = False,
        chunk_size: int = 8,
    ) -> None:
        if isinstance(script, (str, bytes)) or not isinstance(script, Iterable):
            kind = type(script).__name__
            raise TypeError(f"script must be a list of replies, errors or callables, got {kind}")
        self.model = check_name("model", model)
        self.repeat_last = check_bool("repeat_last", repeat_last)
        self.chunk_size = check_int("chunk_size", chunk_size, minimum=1)
        self._script: deque[ScriptItem] = deque(script)
        self._last: ScriptItem | None = None
        self._lock = threading.Lock()
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.__name__ = model

    @property
    def remaining(self) -> int:
        return len(self._script)

    def extend(self, items: Iterable[ScriptItem]) -> None:
        with self._lock:
            self._script.extend(items)

    def _next(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Reply:
        with self._lock:
            self.calls.append((args, dict(kwargs)))
            if self._script:
                item = self._last = self._script.popleft()
            elif self.repeat_last and self._last is not None:
                item = self._last
            else:
                raise ScriptExhaustedError(
                    f"ScriptedModel {self.model!r} has no entry left for call {len(self.calls)}"
                )
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item()
        if callable(item) and not isinstance(item, (str, Reply)):
            produced: Any = item(*args, **kwargs)
            if isinstance(produced, BaseException):
                raise produced
            item = produced
        if isinstance(item, Reply):
            return item if item.model else _with_model(item, kwargs.get("model") or self.model)
        if isinstance(item, str):
            usage = Usage(
                input_tokens=max(1, _text_of(args, kwargs) // 4),
                output_tokens=max(1, len(item) // 4),
            )
            return Reply(item, usage, kwargs.get("model") or self.model)
        raise TypeError(f"script entries must be str, Reply or exceptions; got {type(item)}")

    def __call__(self, *args: Any, **kwargs: Any) -> Reply:
        return self._next(args, kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Reply:
        await asyncio.sleep(0)
        return self._next(args, kwargs)

    def _chunks(self, reply: Reply) -> list[Chunk]:
        text, size = reply.text, self.chunk_size
        parts = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        return [Chunk(p) for p in parts[:-1]] + [Chunk(parts[-1], reply.usage)]

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Chunk]:
        yield from self._chunks(self._next(args, kwargs))

    async def astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Chunk]:
        for chunk in self._chunks(self._next(args, kwargs)):
            await asyncio.sleep(0)
            yield chunk


def _with_model(reply: Reply, model: str) -> Reply:
    return Reply(reply.text, reply.usage, model, reply.tool_calls, reply.finish_reason)


class FakeClock:
    """An injectable clock: `clock()` reads it, `sleep`/`asleep` advance it without waiting."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = check_number("start", start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)


class CapturedEvents(list[Event]):
    """The events captured by `capture_events()`, in emission order."""

    def names(self) -> list[str]:
        return [e.name for e in self]

    def named(self, name: str) -> list[Event]:
        return [e for e in self if e.name == name]


@contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Capture every event emitted in this process while the block runs."""
    captured = CapturedEvents()
    lock = threading.Lock()

    def listener(event: Event) -> None:
        with lock:
            captured.append(event)

    add_listener(listener)
    try:
        yield captured
    finally:
        remove_listener(listener)


class RecordingMiddleware(Middleware):
    """Appends `(name, "enter"|"exit"|"error", call.name)` to `log` around each call."""

    def __init__(self, log: list[tuple[str, str, str]], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.log = log

    def before(self, call: Call) -> None:
        self.log.append((self.name, "enter", call.name))

    def after(self, call: Call, result: Any) -> Any:
        self.log.append((self.name, "exit", call.name))
        return result

    def on_error(self, call: Call, exc: BaseException) -> None:
        self.log.append((self.name, "error", call.name))
