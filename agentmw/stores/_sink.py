"""The shared shape of the durable sinks: batching, flush/close twins, counters, schema errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Generic, Self, TypedDict, TypeVar

from agentmw.stores._batch import Backend, BatchWriter
from agentmw.stores._twins import offloaded

T = TypeVar("T")


class UsageTotals(TypedDict):
    """Per-model totals returned by `totals()` of the usage sinks."""

    turns: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal


class BatchedSink(ABC, Generic[T]):
    """Base of every durable sink: items go through a `BatchWriter` (see `agentmw.stores._batch`).

    Subclasses supply the backend and the read side (`replay`, `totals`). Usable as a context
    manager (sync or async); `close()` also runs at interpreter exit.
    """

    @abstractmethod
    def replay(self, session_id: str | None = None) -> list[T]:
        """The stored items in write order, all or those of one session."""

    areplay = offloaded(replay)
    """`replay` (the subclass's) in a worker thread, without blocking the event loop."""

    def __init__(
        self,
        backend: Backend[T],
        *,
        name: str,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        put_timeout: float,
    ) -> None:
        self._writer: BatchWriter[T] = BatchWriter(
            backend,
            name=name,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            put_timeout=put_timeout,
        )

    @property
    def dropped(self) -> int:
        """Items never written: queue full past `put_timeout`, sink closed, or batch failed."""
        return self._writer.dropped

    @property
    def written(self) -> int:
        """Items written so far."""
        return self._writer.written

    @property
    def write_errors(self) -> int:
        """Batch writes that raised (their items are counted in `dropped`)."""
        return self._writer.write_errors

    @property
    def closed(self) -> bool:
        return self._writer.closed

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything queued before this call is written (or dropped).

        Returns:
            False when `timeout` seconds passed first.
        """
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Write what is queued, stop the writer thread, release the store. Idempotent."""
        self._writer.close()

    # Flushing and closing wait for the writer thread: their async twins wait in a worker thread.
    aflush = offloaded(flush)
    """`flush` without blocking the event loop (bound it with `timeout` or `asyncio.timeout`)."""
    aclose = offloaded(close)
    """`close` without blocking the event loop."""

    def _put(self, item: T) -> None:
        self._writer.put(item)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
