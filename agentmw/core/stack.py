"""`Stack`: an immutable ordered tuple of middleware, compiled once into call chains."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar, overload

from agentmw.core.call import Call
from agentmw.core.chain import compile_chain
from agentmw.core.middleware import Middleware
from agentmw.core.order import order_problems
from agentmw.errors import StackOrderWarning

__all__ = ["Stack", "get_default_stack", "set_default_stack"]

Mode = Literal["sync", "async", "stream", "astream"]
Target = type[Middleware] | str
M = TypeVar("M", bound=Middleware)


class Stack:
    """An immutable ordered stack of middleware. The first layer is the outermost.

    Edits return new stacks. Each (kind, mode) chain is compiled once, on first use, and cached.
    """

    __slots__ = ("__weakref__", "_chains", "_checked", "_layers", "_lock", "_timeouts")

    def __init__(self, layers: Iterable[Middleware] = (), *, check: bool = True) -> None:
        """Build a stack from `layers`, outermost first.

        An order that breaks a layer's guarantee (see `check`) warns `StackOrderWarning`, once
        per problem, naming both layers and the fix; `check=False` accepts a deliberate order
        without a word (and so do the stacks edited from it).

        Raises:
            TypeError: an entry is not a `Middleware` instance.
            ValueError: two layers share a name (give one of them `name=`).
        """
        if isinstance(layers, (str, bytes, Middleware)) or not isinstance(layers, Iterable):
            raise TypeError(
                f"layers must be an iterable of Middleware, got {type(layers).__name__}"
            )
        items = tuple(layers)
        seen: dict[str, int] = {}
        for index, layer in enumerate(items):
            if not isinstance(layer, Middleware):
                raise TypeError(
                    f"stack entry {index} must be a Middleware instance, got {type(layer).__name__}"
                )
            if layer.name in seen:
                raise ValueError(
                    f"layers {seen[layer.name]} and {index} are both named {layer.name!r}; "
                    "pass name= to one of them"
                )
            seen[layer.name] = index
        if not isinstance(check, bool):
            raise TypeError(f"check must be True or False, got {type(check).__name__}")
        self._layers = items
        self._checked = check
        if check:
            for problem in order_problems(items):
                warnings.warn(
                    StackOrderWarning(problem.message, problem.outer, problem.inner), stacklevel=2
                )
        self._chains: dict[tuple[str, str], Callable[[Call], Any]] = {}
        self._timeouts: dict[float, Stack] = {}
        self._lock = threading.Lock()

    # -- sequence protocol -------------------------------------------------------------------
    @property
    def layers(self) -> tuple[Middleware, ...]:
        return self._layers

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Middleware]:
        return iter(self._layers)

    def __getitem__(self, index: int) -> Middleware:
        return self._layers[index]

    def __add__(self, other: Stack | Iterable[Middleware]) -> Stack:
        if isinstance(other, Stack):
            return self._edited(self._layers + other._layers)
        if isinstance(other, (list, tuple)):
            return self._edited(self._layers + tuple(other))
        return NotImplemented

    def __radd__(self, other: Iterable[Middleware]) -> Stack:
        if isinstance(other, (list, tuple)):
            return self._edited(tuple(other) + self._layers)
        return NotImplemented

    def _edited(self, layers: tuple[Middleware, ...]) -> Stack:
        return Stack(layers, check=self._checked)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stack) and self._layers == other._layers

    def __hash__(self) -> int:
        return hash(self._layers)

    def __repr__(self) -> str:
        return f"Stack([{', '.join(x.name for x in self._layers)}])"

    # -- edits ---------------------------------------------------------------------------------
    def index(self, target: Target) -> int:
        """Position of the one layer matching `target` (a class or a layer name).

        Raises:
            ValueError: nothing matches, or more than one layer does; the message lists the layers.
        """
        if isinstance(target, str):
            hits = [i for i, x in enumerate(self._layers) if x.name == target]
            label = repr(target)
        elif isinstance(target, type) and issubclass(target, Middleware):
            hits = [i for i, x in enumerate(self._layers) if isinstance(x, target)]
            label = target.__name__
        else:
            raise TypeError(f"target must be a Middleware class or a layer name, got {target!r}")
        names = ", ".join(x.name for x in self._layers) or "(empty stack)"
        if not hits:
            raise ValueError(f"no layer matches {label}; layers: {names}")
        if len(hits) > 1:
            which = ", ".join(self._layers[i].name for i in hits)
            raise ValueError(f"{label} matches several layers ({which}); target one by name")
        return hits[0]

    def __contains__(self, target: object) -> bool:
        try:
            self.index(target)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            return False
        return True

    @overload
    def get(self, target: type[M]) -> M: ...
    @overload
    def get(self, target: str) -> Middleware: ...
    def get(self, target: Target) -> Middleware:
        """The one layer matching `target` (see `index`); typed as `target` when it is a class."""
        return self._layers[self.index(target)]

    def replace(self, target: Target, new: Middleware) -> Stack:
        """A copy with the layer matching `target` replaced by `new`."""
        i = self.index(target)
        return self._edited((*self._layers[:i], new, *self._layers[i + 1 :]))

    def without(self, target: Target) -> Stack:
        """A copy without the layer matching `target`."""
        i = self.index(target)
        return self._edited(self._layers[:i] + self._layers[i + 1 :])

    def insert_before(self, target: Target, new: Middleware) -> Stack:
        """A copy with `new` just outside (before) the layer matching `target`."""
        i = self.index(target)
        return self._edited((*self._layers[:i], new, *self._layers[i:]))

    def insert_after(self, target: Target, new: Middleware) -> Stack:
        """A copy with `new` just inside (after) the layer matching `target`."""
        i = self.index(target) + 1
        return self._edited((*self._layers[:i], new, *self._layers[i:]))

    def check(self) -> list[str]:
        """The problems of this order: each breaks a layer's guarantee, names both layers and
        the fix. Empty for the canonical order (see docs/concepts.md).

        Checked: `Budget` or `Limits` inside `Retry` (every attempt is checked and counted
        again); `RateLimit`, `CircuitBreaker` or `Timeout` outside `Retry` (they must see each
        attempt); `Checkpoint` inside a layer that spends or counts (`Budget`, `Limits`,
        `RateLimit`, `Concurrency`, `CircuitBreaker`: a replayed step would go through it).
        Layers take part by their `order_role`.
        """
        return [problem.message for problem in order_problems(self._layers)]

    def describe(self) -> str:
        """One line per layer, outermost first."""
        if not self._layers:
            return "(empty stack: calls go straight to the function)"
        lines = []
        for i, layer in enumerate(self._layers, 1):
            kinds = "turn, tool" if len(layer.kinds) == 2 else next(iter(layer.kinds))
            cls = type(layer).__name__
            label = layer.name if layer.name == cls else f"{layer.name} ({cls})"
            lines.append(f"{i:>2}. {label}  [{kinds}]")
        return "\n".join(lines)

    @classmethod
    def default(
        cls,
        *,
        budget_usd: Any = None,
        enforce_budget: bool = False,
        max_iterations: Any = 25,
        retry: Any = True,
        breaker: Any = True,
        rate_limit: Any = None,
        guardrails: Any = (),
        permissions: Any = None,
        policy: Any = None,
        saver: Any = None,
        telemetry: Any = True,
        fallback: Any = None,
        concurrency: Any = None,
    ) -> Stack:
        """The canonical order (Telemetry, Checkpoint, Policy, Permissions, Guardrails, Budget,
        Limits, Fallback, Retry, CircuitBreaker, RateLimit, Concurrency) with the layers the
        arguments ask for.

        Each argument takes `None`/`False` to leave its layer out, or a configured layer
        instance to use as is; otherwise:

        Args:
            budget_usd: an amount in USD: `Budget(budget_usd, enforce=enforce_budget)`.
            enforce_budget: the default Budget raises `BudgetExceededError` instead of warning
                (it needs `budget_usd`).
            max_iterations: an int: `Limits(max_turns=max_iterations)`.
            retry: True: `Retry()` (3 attempts, full-jitter backoff).
            breaker: True: `CircuitBreaker("breaker")` (one circuit per model, per tool).
            rate_limit: a dict of `RateLimit` options: `RateLimit(**rate_limit)`.
            guardrails: a list of guardrails: `Guardrails(guardrails)` (empty: none).
            permissions: a `PermissionPolicy`: `Permissions(permissions)`.
            policy: a `PolicyEngine`: `Policy(policy)`.
            saver: a checkpoint saver: `Checkpoint(saver)`.
            telemetry: True: `Telemetry()` on the global OpenTelemetry providers.
            fallback: a list of model names: `Fallback(fallback)`, tried in order when a
                turn's model is exhausted or its circuit is open.
            concurrency: an int: `Concurrency(max_in_flight=concurrency)` (calls in flight per
                model), beside RateLimit.

        Raises:
            TypeError: an argument has a type it does not accept (the message says which).
            ValueError: `enforce_budget=True` without a `budget_usd` (or with a `Budget` that
                does not enforce), an empty `fallback` list, or `concurrency` below 1.
        """
        layers = _preset("default")(
            budget_usd=budget_usd,
            enforce_budget=enforce_budget,
            max_iterations=max_iterations,
            retry=retry,
            breaker=breaker,
            rate_limit=rate_limit,
            guardrails=guardrails,
            permissions=permissions,
            policy=policy,
            saver=saver,
            telemetry=telemetry,
            fallback=fallback,
            concurrency=concurrency,
        )
        return cls(layers)

    # -- compiled chains -----------------------------------------------------------------------
    def chain(self, kind: str, mode: Mode) -> Callable[[Call], Any]:
        """The compiled chain for `kind` ("turn"/"tool") and `mode`, cached after the first use."""
        try:
            return self._chains[kind, mode]
        except KeyError:
            compiled = compile_chain(self._layers, kind, mode)
            with self._lock:
                return self._chains.setdefault((kind, mode), compiled)

    def with_timeout(self, seconds: float) -> Stack:
        """This stack plus an innermost `Timeout(seconds)` layer (cached per value)."""
        try:
            return self._timeouts[seconds]
        except KeyError:
            timeout = _preset("timeout")(seconds, name="run_turn.timeout")
            extended = self._edited((*self._layers, timeout))
            with self._lock:
                if len(self._timeouts) >= 64:
                    self._timeouts.clear()
                return self._timeouts.setdefault(seconds, extended)


# Builders registered by `agentmw.presets` (which the package root imports), so that the core
# offers `Stack.default` and `run_turn(timeout=)` without importing a single layer.
_presets: dict[str, Callable[..., Any]] = {}


def register_preset(name: str, build: Callable[..., Any]) -> None:
    """Register a builder the core calls by name ("default", "timeout"); internal."""
    _presets[name] = build


_preset_loader: Callable[[], object] | None = None


def set_preset_loader(load: Callable[[], object]) -> None:
    """How to load the presets on first use (the package root sets it; internal)."""
    global _preset_loader
    _preset_loader = load


def _preset(name: str) -> Callable[..., Any]:
    build = _presets.get(name)
    if build is None and _preset_loader is not None:
        _preset_loader()  # the presets import every layer: only when first needed
        build = _presets.get(name)
    if build is None:  # pragma: no cover - the root always sets the loader
        raise RuntimeError(f"agentmw.presets did not register {name!r}; import agentmw")
    return build


def as_stack(argument: str, value: Stack | Iterable[Middleware]) -> Stack:
    """`value` as a Stack (a list or tuple of layers is wrapped); errors name `argument`."""
    if isinstance(value, Stack):
        return value
    if isinstance(value, (list, tuple)):
        return Stack(value)
    raise TypeError(
        f"{argument} must be a Stack or a list of Middleware, got {type(value).__name__}"
    )


_default_stack = Stack()
_default_lock = threading.Lock()


def set_default_stack(stack: Stack | Iterable[Middleware]) -> Stack:
    """Set the process default stack (used outside sessions); returns the previous one."""
    global _default_stack
    new = stack if isinstance(stack, Stack) else Stack(stack)
    with _default_lock:
        previous, _default_stack = _default_stack, new
    return previous


def get_default_stack() -> Stack:
    """The process default stack (initially empty)."""
    return _default_stack
