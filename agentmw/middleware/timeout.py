"""`Timeout`: a deadline per attempt, so a hung attempt becomes a visible failure."""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from agentmw._validate import check_number
from agentmw.core.call import Call
from agentmw.core.middleware import (
    AsyncNext,
    AsyncStreamNext,
    Middleware,
    Next,
    StreamNext,
    aclose,
    close,
)
from agentmw.errors import TurnTimeoutError

_DONE = object()  # the end of a stream


__all__ = ["Timeout"]


def run_in_worker(fn: Any, name: str) -> tuple[threading.Event, list[Any]]:
    """Run `fn()` in a daemon library worker thread carrying the caller's contextvars.

    Daemon threads, not a pool: a hung call must never block interpreter exit or exhaust a pool
    that later calls need.
    """
    done = threading.Event()
    box: list[Any] = []
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box.append((True, ctx.run(fn)))
        except BaseException as exc:
            box.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=target, name=f"agentmw-worker:{name}", daemon=True).start()
    return done, box


class Timeout(Middleware):
    """Fails an attempt that runs past `seconds` with `TurnTimeoutError`.

    Async calls use `asyncio.timeout`. Sync calls run in a library worker thread; at the deadline
    the caller gets `TurnTimeoutError` and the late result is discarded (Python cannot kill a
    thread, so the function itself runs on until it returns). Streams bound the whole stream.
    """

    order_role = "timeout"  # read by the stack's order checks (agentmw.core.order)

    def __init__(self, seconds: float, *, name: str | None = None, kinds: Any = None) -> None:
        super().__init__(name=name, kinds=kinds)
        self.seconds = check_number("seconds", seconds, above=0)

    def _expired(self, call: Call) -> TurnTimeoutError:
        """Announce the expired deadline; the error the attempt fails with."""
        call.emit("timeout.expired", seconds=self.seconds, attempt=call.attempt)
        return TurnTimeoutError(self.seconds, call.name)

    def handle(self, call: Call, call_next: Next) -> Any:
        done, box = run_in_worker(lambda: call_next(call), call.name)
        if not done.wait(self.seconds):
            raise self._expired(call)
        ok, value = box[0]
        if ok:
            return value
        raise value

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        scope = asyncio.timeout(self.seconds)
        try:
            async with scope:
                return await call_next(call)
        except TimeoutError:
            if not scope.expired():  # the call's own TimeoutError, not our deadline
                raise
            raise self._expired(call) from None

    def handle_stream(self, call: Call, call_next: StreamNext) -> Iterator[Any]:
        # The producer runs in a worker thread and hands chunks over a small queue, so the
        # consumer can wait with a deadline; closing the consumer stops the producer.
        chunks: queue.Queue[Any] = queue.Queue(maxsize=1)
        stop = threading.Event()

        def produce() -> None:
            gen = call_next(call)
            try:
                for chunk in gen:
                    while not stop.is_set():
                        try:
                            chunks.put((True, chunk), timeout=0.05)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        break
                else:
                    chunks.put((True, _DONE))
            except BaseException as exc:
                chunks.put((False, exc))
            finally:
                close(gen)

        run_in_worker(produce, call.name)
        loop_deadline = time.monotonic() + self.seconds
        try:
            while True:
                remaining = loop_deadline - time.monotonic()
                try:
                    ok, item = chunks.get(timeout=max(remaining, 0.0))
                except queue.Empty:
                    raise self._expired(call) from None
                if not ok:
                    raise item
                if item is _DONE:
                    return
                yield item
        finally:
            stop.set()

    async def ahandle_stream(self, call: Call, call_next: AsyncStreamNext) -> AsyncIterator[Any]:
        # The deadline scope wraps each wait for a chunk, never a `yield`: a timeout scope held
        # across a yield would cancel the consumer's own code.
        agen = call_next(call)
        deadline = asyncio.get_running_loop().time() + self.seconds
        try:
            while True:
                scope = asyncio.timeout_at(deadline)
                try:
                    async with scope:
                        chunk = await anext(agen, _DONE)
                except TimeoutError:
                    if not scope.expired():
                        raise
                    raise self._expired(call) from None
                if chunk is _DONE:
                    return
                yield chunk
        finally:
            await aclose(agen)
