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
        "_chunk",
        "_count",
        "_counts",
        "_events",
        "_isolation",
        "_keep",
        "_keeper",
        "_kept",
        "_lock",
        "_older",
        "_pending",
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
        # The buffer is flat lists of up to `_chunk` items each (see `items`): `_events` the
        # one filling, `_count` its items; `_older` the full ones (None until the first
        # fills), of which the newest `_kept` stay, so at least `capacity` items are kept and
        # at most about an eighth more. Dropping a whole chunk moves nothing (trimming the
        # front of one list moved all of it).
        self._events: list[Any] = []
        self._count = 0
        # The last record kept by `record` (a call's start, as a rule), not flattened yet: its
        # end (`record_end`) takes its place without touching it, or the next item pushes it
        # into the buffer first.
        self._pending: Record | None = None
        self._older: list[list[Any]] | None = None
        self._capacity = capacity
        chunk = self._chunk = max(capacity // 8, 16)
        self._kept = -(-capacity // chunk)
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
        return expand(self.items()[-capacity:])[-capacity:]  # an item may be two events

    def items(self) -> list[Event | Record]:
        """The buffer's items, oldest first: `Event`s and compact records (a snapshot).

        The buffer stores them flat: a record as its fields then their number, an `Event` as
        itself then 0. A record's fields are copied into the session's list, not kept as a
        tuple of their own, so a live session retains no new garbage-collected object per
        call (the agent's ring buffer keeps the record's tuple until it drops it). Under load
        that keeps the cyclic collector quiet: 10,000 open sessions each keeping a tuple per
        call made it run every few hundred turns, over the whole heap.
        """
        with self._lock:
            chunks = [*(self._older or ()), self._events[:]]
            pending = self._pending
        out: list[Event | Record] = []
        for flat in chunks:
            items: list[Event | Record] = []
            index = len(flat) - 1
            while index >= 0:  # from the end: each item ends with its size
                size = flat[index]
                if size:
                    items.append(tuple(flat[index - size : index]))
                    index -= size + 1
                else:
                    items.append(flat[index - 1])
                    index -= 2
            items.reverse()
            out += items
        if pending is not None:
            out.append(pending)
        return out

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
        counts = self._counts
        lock = self._lock  # `_keep_counted` inline (the call path: one frame less)
        lock.acquire()
        try:
            pending = self._pending
            if pending is not None:  # a start whose end did not come next
                self._flatten(pending)
            self._pending = record
            counts[name] = counts.get(name, 0) + 1
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
        counts = self._counts
        lock = self._lock  # acquire/release: `with` makes two bound methods a call
        lock.acquire()
        try:
            counts[name] = counts.get(name, 0) + 1
            pending = self._pending
            # This call's start (same step, same head) with nothing after it: replace it.
            if (
                pending is not None
                and pending[3] == record[3]
                and pending[0] == start
                and pending[1] is record[1]
            ):
                self._pending = None
                count = self._count  # `_tail` inline (the call path)
                if count < self._chunk:
                    events = self._events
                else:
                    self._roll()
                    events, count = self._events, 0
                self._count = count + 1
                events += record
                events.append(len(record))
            else:  # kept without the start time, after whatever came between
                if pending is not None:
                    self._flatten(pending)
                events = self._tail()
                events += record[:-2]
                events.append(record[-1])
                events.append(len(record) - 1)
        finally:
            lock.release()

    def _flatten(self, record: Record) -> None:
        """Move `record`, the pending one, into the buffer (under the lock)."""
        self._pending = None
        events = self._tail()
        events += record
        events.append(len(record))

    def _tail(self) -> list[Any]:
        """The chunk the next item goes into, that item counted (a full chunk rolls over);
        under the lock."""
        if self._count >= self._chunk:
            self._roll()
        self._count += 1
        return self._events

    def _roll(self) -> None:
        """Start a new chunk (the current one is full) and drop the oldest beyond `_kept`;
        under the lock."""
        older = self._older
        if older is None:
            older = self._older = []
        older.append(self._events)
        if len(older) > self._kept:
            del older[0]
        self._events = []
        self._count = 0

    def _new_sink(self, sink: object) -> None:
        """Cache the default ring buffer's `keep` when `sink` is exactly one (else None), per
        sink object: `agent.event_sink` may be replaced while sessions run."""
        exact = type(sink) is RingBufferEventSink
        self._keep = sink.keep if exact else None  # type: ignore[attr-defined]
        self._keeper = sink

    def _keep_counted(self, item: Event, name: str) -> None:
        """Append `item` to the buffer and count `name` (a full chunk rolls over: `_roll`).

        Under the lock, as `record_end` reads and clears the pending record under it.
        """
        counts = self._counts
        lock = self._lock  # acquire/release: `with` makes two bound methods a call
        lock.acquire()
        try:
            pending = self._pending
            if pending is not None:
                self._flatten(pending)
            events = self._tail()
            events.append(item)
            events.append(0)
            counts[name] = counts.get(name, 0) + 1
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
