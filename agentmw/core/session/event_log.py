"""`EventLog`: a session's events, kept, counted and delivered to sinks and listeners."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agentmw.classify import exception_type
from agentmw.events import (
    Event,
    Record,
    RingBufferEventSink,
    expand,
    listeners,
    materialize,
)

if TYPE_CHECKING:
    from agentmw.core.agent import Agent

__all__: list[str] = []  # `Session` is the public face of this module

EVENT_CAPACITY = 1000


class EventLog:
    """The events of one session.

    Each event is kept in a bounded buffer (the most recent `capacity`), counted by name, sent
    to the agent's event sink and to the process listeners. Sinks are isolated: a failing sink
    never breaks the session; its failures are counted by the agent's `sink_isolation` and the
    first one is reported once, as a `sink.failed` event on this log (never through the sink).

    Args:
        session_id: the id the events carry.
        agent: whose role, phase, project and sinks the events use.
        capacity: how many recent events to keep.
        lock: the lock guarding the buffer and the counts (default: a new one). A session
            shares one lock among its parts; it is held only over a few dict and list
            operations, never across a call out.
    """

    __slots__ = (
        "_agent",
        "_capacity",
        "_counts",
        "_events",
        "_isolation",
        "_keep",
        "_keeper",
        "_lock",
        "_trim_at",
        "session_id",
    )

    def __init__(
        self,
        session_id: str,
        agent: Agent,
        capacity: int = EVENT_CAPACITY,
        lock: threading.Lock | None = None,
    ) -> None:
        self.session_id = session_id
        self._agent = agent
        self._isolation = agent.sink_isolation
        # A list trimmed back to `capacity` once it holds an eighth more (under the lock): an
        # empty deque with a bound costs ~760 bytes, most of a short session's buffer.
        self._events: list[Event | Record] = []
        self._capacity = capacity
        self._trim_at = capacity + max(capacity // 8, 16)
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock() if lock is None else lock
        self._keeper: object = None  # the default ring buffer sink whose `keep` is cached
        self._keep: Callable[[Record], None] | None = None

    @property
    def events(self) -> list[Event]:
        """The most recent events, oldest first (a snapshot)."""
        capacity = self._capacity
        if not capacity:
            return []
        return expand(self._events[-capacity:])[-capacity:]  # an item may be two events

    def share_counts(self, other: EventLog) -> None:
        """Count into `other`'s counts (a finished session's stand-in keeps them current)."""
        self._counts = other._counts
        self._lock = other._lock

    def counts(self) -> dict[str, int]:
        """How many events of each name were recorded (a snapshot)."""
        with self._lock:
            return dict(self._counts)

    def emit(
        self,
        name: str,
        *,
        step: int | None = None,
        model: str | None = None,
        tool: str | None = None,
        failure_class: str | None = None,
        detail: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        """Build the event `name` with the session's fields and `publish` it."""
        agent = self._agent
        return self.publish(
            Event(
                name,
                self.session_id,
                agent.role,
                agent.phase,
                agent.project_id,
                step,
                model,
                tool,
                failure_class,
                detail,
                data,
            )
        )

    def publish(self, event: Event) -> Event:
        """Keep, count and deliver an event built by the caller (`emit`, a failed call, a
        materialized record for a sink or listener that needs the `Event`)."""
        self._keep_counted(event, event.name)
        sink = self._agent.event_sink
        if sink is not None:
            try:
                sink.emit(event)
            except Exception as exc:  # a sink must never break a session
                if self._isolation.failed(sink, exc):
                    self._sink_failed(sink, exc)
        if listeners.current:
            listeners.notify(event)
        return event

    def record(self, record: Record) -> None:
        """Keep and count a compact call record (`agentmw.events.materialize`): the call path.

        The record stays compact in this log and in the agent's default ring buffer sink; any
        other sink, and the process listeners, get the `Event` built from it.
        """
        sink = self._agent.event_sink
        if sink is not self._keeper:
            self._new_sink(sink)
        keep = self._keep
        if keep is None or listeners.current:
            self.publish(materialize(record))
            return
        keep(record)
        name = record[0]
        events = self._events
        counts = self._counts
        lock = self._lock  # `_keep_counted` inline (the call path: one frame less)
        lock.acquire()
        try:
            events.append(record)
            counts[name] = counts.get(name, 0) + 1
            if len(events) > self._trim_at:
                del events[: len(events) - self._capacity]
        finally:
            lock.release()

    def record_end(self, record: Record, start: str) -> None:
        """`record` for the record that ends a call (`turn.completed`, `tool.completed`).

        `record` carries the call's start time (`agentmw.events.Record`). When the buffer's
        last item is that call's `start` record (`turn.started`, `tool.called`), `record`
        takes its place and stands for both events: a live session's buffer holds one record
        per call. Else the buffer appends `record` without the start time. The agent's ring
        buffer gets `record` itself.
        """
        sink = self._agent.event_sink
        if sink is not self._keeper:
            self._new_sink(sink)
        keep = self._keep
        if keep is None or listeners.current:
            self.publish(materialize(record))
            return
        keep(record)
        name = record[0]
        events = self._events
        counts = self._counts
        lock = self._lock  # acquire/release: `with` makes two bound methods a call
        lock.acquire()
        try:
            counts[name] = counts.get(name, 0) + 1
            last = events[-1] if events else None
            # This call's start (same step, same head) with nothing after it: replace it.
            if (
                type(last) is tuple
                and last[3] == record[3]
                and last[0] == start
                and last[1] is record[1]
            ):
                events[-1] = record
            else:
                events.append((*record[:-2], record[-1]))
                if len(events) > self._trim_at:
                    del events[: len(events) - self._capacity]
        finally:
            lock.release()

    def _new_sink(self, sink: object) -> None:
        """Cache the default ring buffer's `keep` when `sink` is exactly one (else None), per
        sink object: `agent.event_sink` may be replaced while sessions run."""
        exact = type(sink) is RingBufferEventSink
        self._keep = sink.keep if exact else None  # type: ignore[attr-defined]
        self._keeper = sink

    def _keep_counted(self, item: Event | Record, name: str) -> None:
        """Append `item` to the buffer and count `name`; trim the buffer back to capacity.

        The append is under the lock too: `record_end` replaces the last item under it.
        """
        events = self._events
        counts = self._counts
        lock = self._lock  # acquire/release: `with` makes two bound methods a call
        lock.acquire()
        try:
            events.append(item)
            counts[name] = counts.get(name, 0) + 1
            if len(events) > self._trim_at:
                del events[: len(events) - self._capacity]
        finally:
            lock.release()

    def deliver(self, sink: object, method: Callable[[Any], None], item: Any) -> None:
        """Call `method(item)` of `sink` isolated; its first failure becomes `sink.failed`."""
        first_error = self._isolation.call(sink, method, item)
        if first_error is not None:
            self._sink_failed(sink, first_error)

    def _sink_failed(self, sink: object, exc: BaseException) -> None:
        """Record `sink.failed` (the sink's type, the exception's type) here and for listeners.

        Not sent to any sink: the failing one could fail again.
        """
        agent = self._agent
        diag = Event(
            "sink.failed",
            self.session_id,
            agent.role,
            agent.phase,
            agent.project_id,
            failure_class=exception_type(exc),
            detail=type(sink).__qualname__,
        )
        self._keep_counted(diag, diag.name)
        if listeners.current:
            listeners.notify(diag)
