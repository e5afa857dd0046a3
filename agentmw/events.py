"""Events and the sinks that receive them."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from agentmw._validate import check_int, check_methods
from agentmw.usage import Usage

if TYPE_CHECKING:
    import logging

__all__ = [
    "Event",
    "EventSink",
    "FanoutEventSink",
    "LoggingEventSink",
    "RingBufferEventSink",
    "RingBufferUsageSink",
    "UsageRecord",
    "UsageSink",
    "add_listener",
    "remove_listener",
]

_EMPTY: Mapping[str, Any] = {}


_UNSET_AT = datetime.min.replace(tzinfo=UTC)


class _EventFields(NamedTuple):
    name: str
    session_id: str | None = None
    role: str | None = None
    phase: str | None = None
    project_id: str | int | None = None
    step: int | None = None
    model: str | None = None
    tool: str | None = None
    failure_class: str | None = None
    detail: str | None = None
    data: Mapping[str, Any] = _EMPTY
    at: datetime = _UNSET_AT


class Event(_EventFields):
    """Something that happened in a session, e.g. `turn.completed` or `breaker.opened`.

    Immutable. `at` is the UTC time of creation unless given. Events carry an exception's type
    (in `detail` or `failure_class`), never its message: messages can hold prompt text or
    secrets.

    A typed named tuple rather than a frozen dataclass: every turn creates two events, and a
    frozen dataclass costs several times more to build (see docs/development.md).
    """

    __slots__ = ()

    def __new__(
        cls,
        name: str,
        session_id: str | None = None,
        role: str | None = None,
        phase: str | None = None,
        project_id: str | int | None = None,
        step: int | None = None,
        model: str | None = None,
        tool: str | None = None,
        failure_class: str | None = None,
        detail: str | None = None,
        data: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> Event:
        return tuple.__new__(
            cls,
            (
                name,
                session_id,
                role,
                phase,
                project_id,
                step,
                model,
                tool,
                failure_class,
                detail,
                _EMPTY if data is None else data,
                datetime.now(UTC) if at is None else at,
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (`at` as ISO 8601)."""
        return {
            "name": self.name,
            "session_id": self.session_id,
            "role": self.role,
            "phase": self.phase,
            "project_id": self.project_id,
            "step": self.step,
            "model": self.model,
            "tool": self.tool,
            "failure_class": self.failure_class,
            "detail": self.detail,
            "data": dict(self.data),
            "at": self.at.isoformat(),
        }


# -- compact records: the per-call events as stored until something reads them -------------
# A session's own call events are kept as short plain tuples, not `Event`s: building the
# `datetime` and the data dict costs more than the rest of the event, and most events are never
# read. The session's buffer and the agent's default ring buffer keep the record, and
# `materialize` builds the `Event` when it is read. A record is never handed to a sink or a
# listener: those get real events. `head` is the session's `(session_id, role, project_id)`,
# shared by its records; `at` is `time.time()`:
#   ("turn.started", head, phase, step, model, at)
#   ("turn.completed", head, phase, step, model, usage, attempts, cost, started_at, at)
#   ("tool.called", head, phase, step, tool, data, at)
#   ("tool.completed", head, phase, step, tool, data, called_at, at)
#   ("agent.started", head, phase, None, None, data, at)  (a session event: no step, no tool)
# `cost` is the `Decimal`, or the `ModelPricing` whose rates gave it (`Call.priced`): the same
# `Decimal` again from the record's usage, 8 bytes kept instead of ~100. A completed record
# carries its call's start time: a session's own buffer (never a sink) keeps it *in place of*
# the call's start record when nothing came between them, so a live session holds one record
# per call, and `expand` reads it back as both events. Otherwise the buffer keeps the
# completed record without the start time (`started_at` / `called_at` left out), after its
# start record.
Record = tuple[Any, ...]

# The length of a completed record that stands for its start too (it carries the start time).
_JOINED = {"turn.completed": 10, "tool.completed": 8}


def expand(items: Iterable[Event | Record]) -> list[Event]:
    """The `Event`s of a session buffer's items, oldest first (see `Record`)."""
    out: list[Event] = []
    for item in items:
        if type(item) is tuple and len(item) == _JOINED.get(item[0]):
            head, phase, step, subject = item[1:5]
            if item[0] == "turn.completed":
                out.append(materialize(("turn.started", head, phase, step, subject, item[-2])))
            else:
                start = ("tool.called", head, phase, step, subject, item[5], item[-2])
                out.append(materialize(start))
        out.append(materialize(item))
    return out


def materialize(item: Event | Record) -> Event:
    """The `Event` of a stored item: itself when it is one, else built from its record."""
    if type(item) is not tuple:
        return item  # type: ignore[return-value]
    name, (session_id, role, project_id), phase, step, subject = item[:5]
    at = datetime.fromtimestamp(item[-1], UTC)
    if name == "turn.started":
        fields = (subject, None, None, None, _EMPTY)
    elif name == "turn.completed":
        usage, attempts, cost = item[5:8]
        if not isinstance(cost, Decimal):  # the rates that priced the call (`Call.priced`)
            cost = cost.cost(usage)
        data = {"usage": usage.as_dict(), "attempts": attempts, "cost_usd": str(cost)}
        fields = (subject, None, None, None, data)
    else:  # a tool record
        fields = (None, subject, None, None, item[5])
    return tuple.__new__(Event, (name, session_id, role, phase, project_id, step, *fields, at))


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """The usage and cost of one successful call, as sent to a `UsageSink`."""

    session_id: str | None
    role: str | None
    model: str | None
    kind: str
    name: str
    step: int
    usage: Usage
    cost_usd: Decimal = Decimal(0)
    project_id: str | int | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@runtime_checkable
class EventSink(Protocol):
    """Receives every event of the sessions it is attached to."""

    def emit(self, event: Event) -> None: ...


@runtime_checkable
class UsageSink(Protocol):
    """Receives one `UsageRecord` per successful call."""

    def record(self, record: UsageRecord) -> None: ...


class RingBufferEventSink:
    """Keeps the most recent `capacity` events in memory (the default sink)."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = check_int("capacity", capacity, minimum=1)
        self._events: deque[Event | Record] = deque(maxlen=capacity)
        # Keeps a session's compact call record (see `materialize`): the sessions' fast path,
        # the deque's own append (no Python frame).
        self.keep: Callable[[Record], None] = self._events.append

    def emit(self, event: Event) -> None:
        self._events.append(event)  # deque.append is atomic under the GIL

    @property
    def events(self) -> list[Event]:
        """A snapshot, oldest first."""
        return [materialize(e) for e in list(self._events)]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def clear(self) -> None:
        self._events.clear()


class RingBufferUsageSink:
    """Keeps the most recent `capacity` usage records in memory."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = check_int("capacity", capacity, minimum=1)
        self._records: deque[UsageRecord] = deque(maxlen=capacity)

    def record(self, record: UsageRecord) -> None:
        self._records.append(record)

    @property
    def records(self) -> list[UsageRecord]:
        """A snapshot, oldest first."""
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)


class LoggingEventSink:
    """Writes each event as one structured log line (logger `agentmw.events` by default)."""

    def __init__(self, logger: logging.Logger | str = "agentmw.events", level: int = 20):
        import logging  # on first use: `import agentmw` does not load logging

        if not isinstance(logger, (str, logging.Logger)):
            kind = type(logger).__name__
            raise TypeError(f"logger must be a logging.Logger or a logger name, got {kind}")
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = check_int("level", level, minimum=0)

    def emit(self, event: Event) -> None:
        if self.logger.isEnabledFor(self.level):
            self.logger.log(
                self.level,
                "%s session=%s role=%s step=%s model=%s tool=%s failure=%s detail=%s",
                event.name,
                event.session_id,
                event.role,
                event.step,
                event.model,
                event.tool,
                event.failure_class,
                event.detail,
                extra={"agentmw_event": event.as_dict()},
            )


class FanoutEventSink:
    """Sends each event to several sinks; one failing sink does not stop the others."""

    def __init__(self, *sinks: EventSink) -> None:
        for index, sink in enumerate(sinks):
            check_methods(f"sinks[{index}]", sink, ("emit",), "an EventSink")
        self.sinks: tuple[EventSink, ...] = tuple(sinks)
        self._isolation = SinkIsolation()

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            self._isolation.call(sink, sink.emit, event)

    @property
    def errors(self) -> dict[str, int]:
        """Failures counted per sink type."""
        return self._isolation.counts()


class SinkIsolation:
    """Calls sinks so that a failing one never breaks the caller; counts failures per sink."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._errors: dict[int, tuple[str, int]] = {}

    def call(self, sink: object, method: Callable[[Any], None], item: Any) -> Exception | None:
        """Call `method(item)`; returns the exception if this was the sink's first failure.

        The caller reports that first failure (once) where it belongs, e.g. on its session.
        """
        try:
            method(item)
        except Exception as exc:  # a sink must never break a session
            return exc if self.failed(sink, exc) else None
        return None

    def failed(self, sink: object, exc: Exception) -> bool:
        """Count a failure of `sink`; True (and one warning, by type) for its first failure."""
        with self._lock:
            label, count = self._errors.get(id(sink), (type(sink).__qualname__, 0))
            self._errors[id(sink)] = (label, count + 1)
        if count:
            return False
        log_warning(
            "event sink %s failed with %s; further failures are counted silently",
            type(sink).__qualname__,
            type(exc).__qualname__,
        )
        return True

    def counts(self) -> dict[str, int]:
        """Failures counted so far, per sink type."""
        with self._lock:
            out: dict[str, int] = {}
            for label, count in self._errors.values():
                out[label] = out.get(label, 0) + count
            return out


def log_warning(message: str, *args: object, logger: str = "agentmw") -> None:
    """Log a warning on `logger`; `logging` is imported on the first warning, not with agentmw."""
    import logging

    logging.getLogger(logger).warning(message, *args)


class Listeners:
    """The process-wide event listeners (`agentmw.testing.capture_events`, OpenTelemetry bridges).

    Internal: `add_listener` / `remove_listener` are the public way in. `current` is a tuple
    that is replaced on every change, never mutated, so emitters read it without a lock:
    `if listeners.current: listeners.notify(event)`.
    """

    __slots__ = ("_lock", "current")

    def __init__(self) -> None:
        self.current: tuple[Callable[[Event], None], ...] = ()
        self._lock = threading.Lock()

    def add(self, listener: Callable[[Event], None]) -> None:
        """Start sending every event to `listener`."""
        with self._lock:
            self.current = (*self.current, listener)

    def remove(self, listener: Callable[[Event], None]) -> None:
        """Stop sending events to `listener` (no error if absent)."""
        with self._lock:
            # Equality, not identity: each `obj.method` access makes a new (but equal) bound method.
            self.current = tuple(x for x in self.current if x != listener)

    def notify(self, event: Event) -> None:
        """Send `event` to every listener; a failing listener is logged and never raises."""
        for listener in self.current:
            try:
                listener(event)
            except Exception as exc:  # listeners are observers; they never break the caller
                log_warning("event listener failed with %s", type(exc).__qualname__)


listeners = Listeners()


def add_listener(listener: Callable[[Event], None]) -> None:
    """Receive every event emitted in this process (sessions and standalone layers)."""
    listeners.add(listener)


def remove_listener(listener: Callable[[Event], None]) -> None:
    """Stop a listener added with `add_listener` (no error if absent)."""
    listeners.remove(listener)


def notify_listeners(event: Event) -> None:
    """Send `event` to the process listeners (see `Listeners.notify`)."""
    listeners.notify(event)


def emit_global(
    name: str,
    *,
    step: int | None = None,
    model: str | None = None,
    tool: str | None = None,
    failure_class: str | None = None,
    detail: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Emit an event outside any session (standalone layers); only listeners see it."""
    if listeners.current:
        listeners.notify(
            Event(
                name,
                step=step,
                model=model,
                tool=tool,
                failure_class=failure_class,
                detail=detail,
                data=data if data is not None else _EMPTY,
            )
        )


def has_listeners() -> bool:
    """True when at least one process listener is registered."""
    return bool(listeners.current)


def event_names(events: Iterable[Event]) -> list[str]:
    """The names of `events`, in order (handy in tests)."""
    return [e.name for e in events]
