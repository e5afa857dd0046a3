"""DBOS model queues: a model's turns as child workflows on its queue (`agentmw.integrations.dbos`).

Private: `agentmw.integrations.dbos` re-exports `model_queue` and `queue_name`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import wrapt
from dbos import DBOS, Queue

from agentmw._validate import check_int, check_name, check_number, check_optional_int

__all__: list[str] = []  # `agentmw.integrations.dbos` is the public face


# -- queued turns: child workflows on a model's queue -----------------------------------------
def _signed(proxy: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """`proxy` with `fn`'s signature, so `Call.set_model` still finds the `model` parameter."""
    return functools.update_wrapper(proxy, fn, assigned=("__name__", "__qualname__", "__doc__"))


def _target(obj: Any) -> Any:
    """The plain function behind an attribute: an agentmw-decorated one is unwrapped once."""
    if isinstance(obj, wrapt.FunctionWrapper):
        return obj.__wrapped__
    return obj


def _resolve(ref: str) -> Any:
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return _target(obj)


def _reference(fn: Callable[..., Any]) -> str:
    """`module:qualname` of a turn function a queue may run in another process.

    Raises:
        ValueError: `fn` is not reachable by that name (a local function, a lambda, a bound
            method of an instance).
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    ref = f"{module}:{qualname}"
    found: Any = None
    if module and qualname and "<" not in qualname:
        try:
            found = _resolve(ref)
        except (ImportError, AttributeError):
            found = None
    if found is not fn:
        raise ValueError(
            f"a turn routed through a DBOS queue runs as a child workflow, possibly in another "
            f"process, so its function must be importable as module:qualname; {ref} is not "
            "(define it at module level, or drop its model from DBOSStep(queues=...))"
        )
    return ref


@DBOS.workflow(name="agentmw.queued_turn")
def _queued_turn(ref: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A model call on a model's queue: one step, so a recovered child does not call twice."""
    fn = _resolve(ref)
    return DBOS.run_step({"name": f"agentmw.model_call:{ref}"}, fn, *args, **kwargs)


@DBOS.workflow(name="agentmw.aqueued_turn")
async def _aqueued_turn(ref: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Async twin of `_queued_turn`."""
    fn = _resolve(ref)
    return await DBOS.run_step_async({"name": f"agentmw.model_call:{ref}"}, fn, *args, **kwargs)


def queue_name(model: str) -> str:
    """The DBOS queue name `model_queue` uses for `model`."""
    return f"agentmw-model-{model}"


def model_queue(
    model: str,
    *,
    concurrency: int,
    worker_concurrency: int | None = None,
    polling_interval_sec: float = 1.0,
) -> Queue:
    """Register (or update) the DBOS queue that caps `model`'s turns in flight, and return it.

    Call it after `DBOS.launch()` in every process that runs the workflows; hand the queue to
    `DBOSStep(queues={model: queue})`.

    Args:
        model: the model name the turns carry (`Call.model`).
        concurrency: most turns of `model` in flight across all processes.
        worker_concurrency: most in flight in one process (None: no per-process cap).
        polling_interval_sec: how often DBOS polls the queue for work.

    Raises:
        TypeError / ValueError: a wrong type or value, naming the argument.
    """
    check_name("model", model)
    check_int("concurrency", concurrency, minimum=1)
    check_optional_int("worker_concurrency", worker_concurrency, minimum=1)
    interval = check_number("polling_interval_sec", polling_interval_sec, above=0)
    return DBOS.register_queue(
        queue_name(model),
        global_concurrency=concurrency,
        worker_concurrency=worker_concurrency,
        polling_interval_sec=interval,
    )
