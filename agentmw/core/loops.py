"""The loops layers share, each with a sync and an async driver.

Restarts (Retry, Fallback): call again, or start a stream again before its first chunk, while a
restart decision says so. Plans (the rate limiter's waiting lines, Checkpoint): decisions
written once as a generator that yields the operations it needs, run by `run_plan` with sync
operations or by `arun_plan` with async ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, TypeVar, cast

from agentmw.core.call import Call
from agentmw.core.middleware import AsyncNext, AsyncStreamNext, Next, StreamNext, aclose, close

__all__: list[str] = []  # internal: the layers use these

T = TypeVar("T")
# A plan: a generator of operations (results or awaitables) that returns a `T`.
Plan = Generator[Any, Any, T]


# -- restarts (Retry, Fallback) ------------------------------------------------------------------
Restart = Callable[[BaseException], "tuple[Call, float] | None"]
"""`restart(exc)`: the call for the next try and the delay before it, or None to re-raise."""
RestartPlan = Callable[[Call], Restart]
"""Builds a call's `Restart` on its first failure (the success path builds nothing)."""


def restartable(
    call: Call,
    call_next: Next,
    plan: RestartPlan,
    sleep: Callable[[float], Any],
    restart: Restart | None = None,
) -> Any:
    """`call_next(call)`, called again as long as the restart decision of `plan(call)` says so.

    `restart`: the decision already made by a first attempt that failed (`restart_link`).
    """
    while True:
        try:
            return call_next(call)
        except BaseException as exc:
            restart = restart or plan(call)
            decision = restart(exc)
            if decision is None:
                raise
        call, delay = decision
        if delay > 0:
            sleep(delay)


async def arestartable(
    call: Call,
    call_next: AsyncNext,
    plan: RestartPlan,
    asleep: Callable[[float], Awaitable[Any]],
    restart: Restart | None = None,
) -> Any:
    """Async twin of `restartable`."""
    while True:
        try:
            return await call_next(call)
        except BaseException as exc:
            restart = restart or plan(call)
            decision = restart(exc)
            if decision is None:
                raise
        call, delay = decision
        if delay > 0:
            await asleep(delay)


def restart_link(
    call_next: Next, plan: RestartPlan, sleep: Callable[[], Callable[[float], Any]]
) -> Next:
    """A compiled link that runs `restartable` with the first attempt inline.

    The success path costs one frame; after a failure the decision is made here, as
    `restartable` makes it, and the loop goes on in `restartable`. `sleep()` returns the
    sleep function (read when it is needed: a layer's attribute may be replaced).
    """

    def restarting(call: Call) -> Any:
        try:
            return call_next(call)
        except BaseException as exc:
            restart = plan(call)
            decision = restart(exc)
            if decision is None:
                raise
        call, delay = decision
        nap = sleep()
        if delay > 0:
            nap(delay)
        return restartable(call, call_next, plan, nap, restart)

    return restarting


def arestart_link(
    call_next: AsyncNext,
    plan: RestartPlan,
    asleep: Callable[[], Callable[[float], Awaitable[Any]]],
) -> AsyncNext:
    """Async twin of `restart_link`."""

    async def arestarting(call: Call) -> Any:
        try:
            return await call_next(call)
        except BaseException as exc:
            restart = plan(call)
            decision = restart(exc)
            if decision is None:
                raise
        call, delay = decision
        nap = asleep()
        if delay > 0:
            await nap(delay)
        return await arestartable(call, call_next, plan, nap, restart)

    return arestarting


def restartable_stream(
    call: Call, call_next: StreamNext, plan: RestartPlan, sleep: Callable[[float], Any]
) -> Iterator[Any]:
    """Stream `call_next(call)`, starting it again while it fails before its first chunk.

    Once a chunk has reached the consumer, errors propagate (the design's streaming rule: retry
    and fallback act only before the first chunk). Retry and Fallback share this.
    """
    restarts = _Restarts(plan)
    while True:
        gen = call_next(call)
        started = False
        try:
            for chunk in gen:
                started = True
                yield chunk
            return
        except BaseException as exc:
            decision = restarts.decide(call, exc, started)
            if decision is None:
                raise
        finally:
            close(gen)
        call, delay = decision
        if delay > 0:
            sleep(delay)


async def arestartable_stream(
    call: Call,
    call_next: AsyncStreamNext,
    plan: RestartPlan,
    asleep: Callable[[float], Awaitable[Any]],
) -> AsyncIterator[Any]:
    """Async twin of `restartable_stream`."""
    restarts = _Restarts(plan)
    while True:
        agen = call_next(call)
        started = False
        try:
            async for chunk in agen:
                started = True
                yield chunk
            return
        except BaseException as exc:
            decision = restarts.decide(call, exc, started)
            if decision is None:
                raise
        finally:
            await aclose(agen)
        call, delay = decision
        if delay > 0:
            await asleep(delay)


class _Restarts:
    """A stream's restart decision: never once a chunk was delivered or the consumer stopped."""

    __slots__ = ("plan", "restart")

    def __init__(self, plan: RestartPlan) -> None:
        self.plan = plan
        self.restart: Restart | None = None

    def decide(self, call: Call, exc: BaseException, started: bool) -> tuple[Call, float] | None:
        if started or isinstance(exc, GeneratorExit):
            return None
        self.restart = self.restart or self.plan(call)
        return self.restart(exc)


# -- plans: decisions written once as a generator, run by a sync or an async driver ----------
# A plan yields each operation it needs: called with sync operations, it yields their results,
# which `run_plan` sends straight back; called with async operations, it yields awaitables,
# which `arun_plan` awaits, sending back the result or throwing the failure into the plan.
def run_plan(plan: Plan[T]) -> T:
    """Run a plan whose operations are sync (each step it yields is already a result)."""
    reply: Any = None
    try:
        while True:
            reply = plan.send(reply)
    except StopIteration as done:
        return cast(T, done.value)
    finally:
        plan.close()


async def arun_plan(plan: Plan[T]) -> T:
    """Async twin of `run_plan`: each step is an awaitable, awaited here."""
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            step = plan.send(reply) if error is None else plan.throw(error)
            reply = error = None
            try:
                reply = await step
            except BaseException as exc:  # the plan handles it, or it comes back out of `throw`
                error = exc
    except StopIteration as done:
        return cast(T, done.value)
    finally:
        plan.close()
