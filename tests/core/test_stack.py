"""`Stack`: ordering (first = outermost), edits, errors, describe() and chain caching."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from agentmw import Call, Middleware, Stack, agent_tool
from agentmw.core import get_default_stack, set_default_stack
from agentmw.core.middleware import AsyncNext
from agentmw.middleware import Timeout
from agentmw.testing import RecordingMiddleware
from tests.support import PATHS, Hooks, PassThrough, consume, make_fn, run_path


class A(Middleware):
    pass


class B(Middleware):
    pass


class C(Middleware):
    pass


@pytest.mark.parametrize("path", PATHS)
async def test_first_layer_is_outermost(path: str) -> None:
    log: list[tuple[str, str, str]] = []
    stack = Stack([RecordingMiddleware(log, name="outer"), RecordingMiddleware(log, name="inner")])
    await run_path(path, stack)
    assert [(n, e) for n, e, _ in log] == [
        ("outer", "enter"),
        ("inner", "enter"),
        ("inner", "exit"),
        ("outer", "exit"),
    ]


@pytest.mark.parametrize("path", PATHS)
async def test_hook_only_layers_in_every_path(path: str) -> None:
    log: list[tuple[str, str]] = []
    stack = Stack([Hooks(log, name="h1"), Hooks(log, name="h2")])
    result = await run_path(path, stack)
    assert result == ("ok" if path in ("sync", "async") else ["a", "b", "c"])
    assert log == [("h1", "before"), ("h2", "before"), ("h2", "after"), ("h1", "after")]


@pytest.mark.parametrize("path", PATHS)
async def test_hook_only_layers_see_errors(path: str) -> None:
    log: list[tuple[str, str]] = []
    stack = Stack([Hooks(log, name="h1"), Hooks(log, name="h2")])
    with pytest.raises(KeyError):
        await run_path(path, stack, fail=KeyError("boom"))
    assert log == [
        ("h1", "before"),
        ("h2", "before"),
        ("h2", "error:KeyError"),
        ("h1", "error:KeyError"),
    ]


@pytest.mark.parametrize("path", ["stream", "astream"])
async def test_stream_early_stop_calls_after(path: str) -> None:
    log: list[tuple[str, str]] = []
    fn = Stack([Hooks(log, name="h")])
    chunks = await consume(path, _decorate(path, fn), take=1)
    assert chunks == ["a"]
    assert log == [("h", "before"), ("h", "after")]


def _decorate(path: str, stack: Stack) -> Any:
    from agentmw import agent_turn

    return agent_turn(stack=stack)(make_fn(path))


class Rewrites(Middleware):
    def after(self, call: Call, result: Any) -> Any:
        return f"{result}!"


async def test_after_may_replace_the_result(mode: str) -> None:
    assert await run_path(mode, Stack([Rewrites(), Rewrites(name="again")])) == "ok!!"


class Refuses(Middleware):
    def before(self, call: Call) -> None:
        raise PermissionError("no")


async def test_before_may_refuse(mode: str) -> None:
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)

    async def afn() -> None:
        calls.append(1)

    wrapped = _decorate_fn(Stack([Refuses()]), fn if mode == "sync" else afn)
    with pytest.raises(PermissionError):
        await consume(mode, wrapped)
    assert calls == []


def _decorate_fn(stack: Stack, fn: Any) -> Any:
    from agentmw import agent_turn

    return agent_turn(stack=stack)(fn)


async def test_kinds_filter_layers(mode: str) -> None:
    log: list[tuple[str, str]] = []
    stack = Stack(
        [Hooks(log, name="turns", kinds="turn"), Hooks(log, name="tools", kinds=["tool"])]
    )

    def tool() -> str:
        return "t"

    async def atool() -> str:
        return "t"

    wrapped = agent_tool(stack=stack)(tool if mode == "sync" else atool)
    assert await consume(mode, wrapped) == "t"
    assert log == [("tools", "before"), ("tools", "after")]
    log.clear()
    await run_path(mode, stack)
    assert log == [("turns", "before"), ("turns", "after")]


@pytest.mark.parametrize("kinds", ["both", [], ["turn", "model"]])
def test_invalid_kinds(kinds: Any) -> None:
    with pytest.raises(ValueError, match="kinds"):
        A(kinds=kinds)


@pytest.mark.parametrize("name", ["", "  "])
def test_invalid_name(name: Any) -> None:
    with pytest.raises(ValueError, match="name must be a non-blank string"):
        A(name=name)
    with pytest.raises(TypeError, match="name must be a string, got int 3"):
        A(name=3)  # type: ignore[arg-type]  # a wrong type on purpose


def test_name_defaults_to_class_name_and_is_overridable() -> None:
    assert A().name == "A"
    assert A(name="first").name == "first"
    assert repr(A()) == "A(name='A')"


def test_edits_return_new_stacks() -> None:
    a, b, c = A(), B(), C()
    stack = Stack([a, b])
    assert list(stack.replace(B, c)) == [a, c]
    assert list(stack.replace("A", c)) == [c, b]
    assert list(stack.without(A)) == [b]
    assert list(stack.without("B")) == [a]
    assert list(stack.insert_before(B, c)) == [a, c, b]
    assert list(stack.insert_after(A, c)) == [a, c, b]
    assert list(stack.insert_after("B", c)) == [a, b, c]
    assert list(stack.insert_before("A", c)) == [c, a, b]
    assert list(stack) == [a, b]  # unchanged
    assert len(stack) == 2
    assert stack[0] is a
    assert stack.get(B) is b
    assert B in stack
    assert C not in stack
    assert "A" in stack


def test_add_with_stack_and_list() -> None:
    a, b, c = A(), B(), C()
    assert list(Stack([a]) + Stack([b])) == [a, b]
    assert list([*Stack([a]), b, c]) == [a, b, c]
    assert list([c, *Stack([a])]) == [c, a]
    assert Stack([a]) == Stack([a])
    assert hash(Stack([a])) == hash(Stack([a]))
    with pytest.raises(TypeError):
        Stack([a]) + 3  # type: ignore[operator]


@pytest.mark.parametrize("edit", ["replace", "without", "insert_before", "insert_after"])
def test_no_match_names_the_candidates(edit: str) -> None:
    stack = Stack([A(), B()])
    args: tuple[Any, ...] = (C,) if edit == "without" else (C, C())
    with pytest.raises(ValueError, match=r"no layer matches C; layers: A, B"):
        getattr(stack, edit)(*args)
    with pytest.raises(ValueError, match=r"no layer matches 'nope'; layers: A, B"):
        getattr(stack, edit)("nope", *args[1:])


def test_ambiguous_match_names_the_candidates() -> None:
    stack = Stack([A(name="a1"), B(), A(name="a2")])
    with pytest.raises(ValueError, match=r"A matches several layers \(a1, a2\)"):
        stack.without(A)
    assert [x.name for x in stack.without("a2")] == ["a1", "B"]


def test_subclass_targets_match_by_isinstance() -> None:
    class SubA(A):
        pass

    stack = Stack([SubA(), B()])
    assert stack.index(A) == 0


def test_invalid_targets_and_entries() -> None:
    with pytest.raises(TypeError, match="target"):
        Stack([A()]).without(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stack entry 1"):
        Stack([A(), object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="no layer matches A; layers: \\(empty stack\\)"):
        Stack().without(A)


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="layers 0 and 1 are both named 'A'"):
        Stack([A(), A()])
    assert len(Stack([A(), A(name="A2")])) == 2
    with pytest.raises(ValueError, match="both named"):
        Stack([A()]).insert_after(A, A())


def test_describe() -> None:
    stack = Stack([A(), B(name="tools-only", kinds="tool"), Timeout(5)])
    assert stack.describe() == (
        " 1. A  [turn, tool]\n 2. tools-only (B)  [tool]\n 3. Timeout  [turn, tool]"
    )
    assert "empty" in Stack().describe()
    assert repr(stack) == "Stack([A, tools-only, Timeout])"


def test_chain_is_compiled_once_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentmw.core import stack as _stack
    from agentmw.core.chain import compile_chain

    compiled: list[tuple[str, str]] = []
    original = compile_chain

    def counting(layers: Any, kind: str, mode: str) -> Any:
        compiled.append((kind, mode))
        return original(layers, kind, mode)

    monkeypatch.setattr(_stack, "compile_chain", counting)
    stack = Stack([PassThrough()])
    fn = _decorate_fn(stack, lambda: 1)
    for _ in range(5):
        assert fn() == 1
    assert stack.chain("turn", "sync") is stack.chain("turn", "sync")
    assert stack.chain("tool", "async") is stack.chain("tool", "async")
    assert compiled == [("turn", "sync"), ("tool", "async")]


def test_pass_through_layers_are_skipped_or_linked() -> None:
    # A layer that overrides nothing adds no link at all; the result is still the function's.
    assert _decorate_fn(Stack([A(), B(), PassThrough()]), lambda: 7)() == 7


def test_default_stack_round_trip() -> None:
    log: list[tuple[str, str]] = []
    previous = set_default_stack([Hooks(log)])
    try:
        assert len(get_default_stack()) == 1
        assert _decorate_plain(lambda: 3)() == 3
        assert log == [("Hooks", "before"), ("Hooks", "after")]
    finally:
        set_default_stack(previous)


def _decorate_plain(fn: Any) -> Any:
    from agentmw import agent_turn

    return agent_turn(fn)


# -- async hooks -------------------------------------------------------------------------------
class AsyncHooks(Hooks):
    """Hooks with async twins: the async paths must await these, the sync paths the others."""

    async def abefore(self, call: Call) -> None:
        await asyncio.sleep(0)
        self.log.append((self.name, "abefore"))

    async def aafter(self, call: Call, result: Any) -> Any:
        await asyncio.sleep(0)
        self.log.append((self.name, "aafter"))
        return result

    async def aon_error(self, call: Call, exc: BaseException) -> None:
        await asyncio.sleep(0)
        self.log.append((self.name, f"aerror:{type(exc).__name__}"))


@pytest.mark.parametrize("path", PATHS)
async def test_async_paths_await_the_async_hooks(path: str) -> None:
    log: list[tuple[str, str]] = []
    stack = Stack([AsyncHooks(log, name="outer"), Hooks(log, name="inner")])
    result = await run_path(path, stack)
    assert result == ("ok" if path in ("sync", "async") else ["a", "b", "c"])
    a = "a" if path in ("async", "astream") else ""
    assert log == [
        ("outer", f"{a}before"),
        ("inner", "before"),
        ("inner", "after"),
        ("outer", f"{a}after"),
    ]
    log.clear()
    with pytest.raises(KeyError):
        await run_path(path, stack, fail=KeyError("boom"))
    assert log[2:] == [("inner", "error:KeyError"), ("outer", f"{a}error:KeyError")]


@pytest.mark.parametrize("path", ["stream", "astream"])
async def test_stream_early_stop_runs_the_final_hook(path: str) -> None:
    log: list[tuple[str, str]] = []
    chunks = await consume(path, _decorate(path, Stack([AsyncHooks(log, name="h")])), take=1)
    assert chunks == ["a"]
    a = "a" if path == "astream" else ""
    assert log == [("h", f"{a}before"), ("h", f"{a}after")]


class AsyncOnlyBefore(Middleware):
    """Overrides only `abefore`: a concern of the async paths alone."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def abefore(self, call: Call) -> None:
        self.log.append(call.name)


async def test_an_async_hook_alone_leaves_the_sync_paths_untouched(mode: str) -> None:
    log: list[str] = []
    stack = Stack([AsyncOnlyBefore(log)])
    assert stack.chain("turn", "sync") is stack.chain("turn", "sync")
    assert await run_path(mode, stack) == "ok"
    assert log == ([] if mode == "sync" else ["async_fn"])


class BeforeOnly(Middleware):
    def before(self, call: Call) -> None:
        call.meta["seen"] = True


def test_sync_hooks_add_no_coroutine_frame_on_the_async_path() -> None:
    # A before-only layer is a plain function returning the next link's awaitable; a layer
    # with sync hooks around the call is one coroutine calling them directly.
    assert not inspect.iscoroutinefunction(Stack([BeforeOnly()]).chain("turn", "async"))
    assert inspect.iscoroutinefunction(Stack([Hooks([])]).chain("turn", "async"))
    assert Stack([A()]).chain("turn", "astream") is Stack().chain("turn", "astream")


class SuperAhandle(Hooks):
    """A layer overriding `ahandle` that defers to the base class (the public API)."""

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        self.log.append((self.name, "ahandle"))
        return await super().ahandle(call, call_next)


async def test_overridden_paths_may_defer_to_the_hooks() -> None:
    log: list[tuple[str, str]] = []
    assert await run_path("async", Stack([SuperAhandle(log, name="s")])) == "ok"
    assert log == [("s", "ahandle"), ("s", "before"), ("s", "after")]
