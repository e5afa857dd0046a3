"""`BatchWriter`: a bounded queue drained in batches by one background thread.

Every durable sink writes through one of these, so the caller's path (a session emitting an
event, possibly on an event loop) only ever pays for a queue put.

Full-queue policy: `put` waits at most `put_timeout` seconds for room, then drops the item,
counts it in `dropped` and logs one warning on the `agentmw.sinks` logger (never the payload).
Write errors are isolated the same way: the failing batch is dropped and counted, the first error
of each exception type is logged, and the thread keeps draining.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

from agentmw._validate import check_int, check_methods, check_name, check_number

log = logging.getLogger("agentmw.sinks")

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


def check_batching(
    batch_size: Any, flush_interval: Any, max_queue: Any, put_timeout: Any
) -> tuple[int, float, int, float]:
    """The batching options of a sink, checked (every sink calls this before touching a file)."""
    return (
        check_int("batch_size", batch_size, minimum=1),
        check_number("flush_interval", flush_interval, above=0),
        check_int("max_queue", max_queue, minimum=1),
        check_number("put_timeout", put_timeout, minimum=0),
    )


class Backend(Protocol[T_contra]):
    """Where batches go; every method runs on the writer thread only."""

    def write(self, items: Sequence[T_contra]) -> None:
        """Persist `items` (all or nothing, ideally one transaction)."""

    def close(self) -> None:
        """Release connections and files; called once, after the last write."""


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()
_live: set[BatchWriter[Any]] = set()
_live_lock = threading.Lock()


def _close_all() -> None:
    # atexit runs before daemon threads are frozen, so queued items still reach the backend.
    with _live_lock:
        writers = list(_live)
    for writer in writers:
        writer.close()


atexit.register(_close_all)


class BatchWriter(Generic[T]):
    """Queues items and writes them in batches on one daemon thread.

    A batch is written when it holds `batch_size` items or `flush_interval` seconds after its
    first item arrived, whichever comes first.

    Args:
        backend: receives each batch on the writer thread.
        name: used for the thread name and log messages.
        batch_size: most items per write.
        flush_interval: seconds an item may wait for its batch to fill.
        max_queue: the queue bound; memory never grows past it.
        put_timeout: seconds `put` may block on a full queue before dropping the item.
    """

    def __init__(
        self,
        backend: Backend[T],
        *,
        name: str,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
        put_timeout: float = 0.05,
    ) -> None:
        self._backend: Backend[T] = check_methods(
            "backend", backend, ("write", "close"), "a sink backend"
        )
        self.name = check_name("name", name)
        self.batch_size, self.flush_interval, max_queue, self.put_timeout = check_batching(
            batch_size, flush_interval, max_queue, put_timeout
        )
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._closed = False
        self._dropped = 0
        self._written = 0
        self._write_errors = 0
        self._warned_full = False
        self._logged_errors: set[str] = set()
        self._thread = threading.Thread(target=self._run, name=f"agentmw-sink-{name}", daemon=True)
        self._thread.start()
        with _live_lock:
            _live.add(self)

    @property
    def dropped(self) -> int:
        """Items that were never written: queue full, sink closed, or their batch failed."""
        with self._lock:
            return self._dropped

    @property
    def written(self) -> int:
        """Items the backend accepted."""
        with self._lock:
            return self._written

    @property
    def write_errors(self) -> int:
        """Batches whose write raised (their items are counted in `dropped`)."""
        with self._lock:
            return self._write_errors

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> None:
        """Queue `item`; blocks at most `put_timeout` seconds, then drops it (see module doc)."""
        if self._closed:
            self._drop(1, "closed")
            return
        try:
            self._queue.put_nowait(item)
            return
        except queue.Full:
            pass
        try:
            if self.put_timeout > 0:
                self._queue.put(item, timeout=self.put_timeout)
                return
        except queue.Full:
            pass
        self._drop(1, "full")

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every item queued before this call is written (or dropped).

        Returns:
            False when `timeout` seconds passed first, True otherwise.
        """
        if self._closed or not self._thread.is_alive():
            return True
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Write what is queued, stop the thread and close the backend. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with _live_lock:
            _live.discard(self)
        if self._thread.is_alive():
            # A blocking put: the writer is draining, so room appears; STOP must not be dropped.
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _drop(self, count: int, reason: str) -> None:
        with self._lock:
            self._dropped += count
            warn = not self._warned_full
            self._warned_full = True
        if warn:
            log.warning(
                "sink %s dropped an item (%s); further drops are counted in `dropped`",
                self.name,
                "queue full" if reason == "full" else "sink closed",
            )

    def _run(self) -> None:
        try:
            self._drain()
        finally:
            try:
                self._backend.close()
            except Exception as exc:  # closing must not raise into the interpreter's shutdown
                log.warning("sink %s failed to close: %s", self.name, type(exc).__qualname__)

    def _drain(self) -> None:
        get = self._queue.get
        while True:
            first = get()
            batch: list[T] = []
            stop = False
            markers: list[_Flush] = []
            item: object = first
            deadline = time.monotonic() + self.flush_interval
            while True:
                if item is _STOP:
                    stop = True
                    break
                if isinstance(item, _Flush):
                    markers.append(item)
                    break
                batch.append(cast(T, item))
                if len(batch) >= self.batch_size:
                    break
                remaining = deadline - time.monotonic()
                try:
                    item = get(timeout=remaining) if remaining > 0 else get_nowait(self._queue)
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            for marker in markers:
                marker.done.set()
            if stop:
                return

    def _write(self, batch: list[T]) -> None:
        try:
            self._backend.write(batch)
        except Exception as exc:  # isolated: count, log the type once, keep draining
            kind = type(exc).__qualname__
            with self._lock:
                self._write_errors += 1
                self._dropped += len(batch)
                first = kind not in self._logged_errors
                self._logged_errors.add(kind)
            if first:
                log.warning(
                    "sink %s failed to write a batch of %d with %s; the batch was dropped",
                    self.name,
                    len(batch),
                    kind,
                )
        else:
            with self._lock:
                self._written += len(batch)


def get_nowait(q: queue.Queue[object]) -> object:
    return q.get_nowait()
