"""`@agent_turn` / `@agent_tool`: every callable form, metadata, model, usage, stack resolution."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agentmw import Agent, Call, Middleware, Stack, Usage, agent_tool, agent_turn, current_session
from agentmw.core import set_default_stack
from agentmw.core.middleware import AsyncNext, Next
from tests.support import PATHS, Hooks, consume, make_fn


class Seen(Middleware):
    """Records every call that passes, and the exception of failed ones."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.calls: list[Call] = []
        self.errors: list[BaseException] = []

    def handle(self, call: Call, call_next: Next) -> Any:
        self.calls.append(call)
        try:
            return call_next(call)
        except Exception as exc:
            self.errors.append(exc)
            raise

    async def ahandle(self, call: Call, call_next: AsyncNext) -> Any:
        self.calls.append(call)
        try:
            return await call_next(call)
        except Exception as exc:
            self.errors.append(exc)
            raise

    def before(self, call: Call) -> None:  # the stream paths
        self.calls.append(call)

    def on_error(self, call: Call, exc: BaseException) -> None:
        self.errors.append(exc)


DECORATORS = {
    "turn-bare": agent_turn,
    "turn-options": agent_turn(model="m", name=None),
    "tool-bare": agent_tool,
    "tool-options": agent_tool(name=None),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("deco", list(DECORATORS))
async def test_every_function_form(path: str, deco: str) -> None:
    seen = Seen()
    set_default_stack([seen])
    fn = DECORATORS[deco](make_fn(path))
    result = await consume(path, fn)
    assert result == ("ok" if path in ("sync", "async") else ["a", "b", "c"])
    assert len(seen.calls) == 1
    call = seen.calls[0]
    assert call.kind == deco.split("-")[0]
    assert call.stream is (path in ("stream", "astream"))


@pytest.mark.parametrize("path", PATHS)
def test_metadata_is_preserved(path: str) -> None:
    original = make_fn(path)
    wrapped = agent_turn(model="m")(original)
    assert wrapped.__name__ == original.__name__
    assert wrapped.__doc__ == original.__doc__
    assert wrapped.__wrapped__ is original
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert inspect.iscoroutinefunction(wrapped) is (path == "async")
    assert inspect.isgeneratorfunction(wrapped) is (path == "stream")
    assert inspect.isasyncgenfunction(wrapped) is (path == "astream")


def test_signature_and_doc_of_a_real_function() -> None:
    @agent_tool(name="lookup")
    def search(query: str, *, limit: int = 3) -> list[str]:
        """Search the index."""
        return [query] * limit

    params = inspect.signature(search).parameters
    assert list(params) == ["query", "limit"]
    assert params["limit"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["limit"].default == 3
    assert search.__doc__ == "Search the index."
    assert search.__name__ == "search"
    assert search("q", limit=2) == ["q", "q"]


class Client:
    factor = 10

    def __init__(self) -> None:
        self.base = 1

    @agent_turn
    def method(self, x: int) -> int:
        return self.base + x

    @agent_turn(model="m")
    async def amethod(self, x: int) -> int:
        return self.base + x

    @agent_tool
    @classmethod
    def cls_outer(cls, x: int) -> int:
        return cls.factor * x

    @classmethod
    @agent_tool
    def cls_inner(cls, x: int) -> int:
        return cls.factor * x

    @agent_tool
    @staticmethod
    def static_outer(x: int) -> int:
        return 2 * x

    @staticmethod
    @agent_tool(name="static")
    def static_inner(x: int) -> int:
        return 2 * x

    @agent_turn
    def gen(self, n: int) -> Iterator[int]:
        yield from range(self.base, self.base + n)

    @agent_turn
    async def agen(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i


async def test_methods_classmethods_staticmethods() -> None:
    seen = Seen()
    set_default_stack([seen])
    client = Client()
    assert client.method(2) == 3
    assert await client.amethod(2) == 3
    assert Client.cls_outer(2) == 20
    assert client.cls_outer(2) == 20
    assert Client.cls_inner(3) == 30
    assert Client.static_outer(4) == 8
    assert client.static_inner(5) == 10
    assert list(client.gen(2)) == [1, 2]
    assert [x async for x in client.agen(2)] == [0, 1]
    names = [c.name for c in seen.calls]
    assert names == [
        "method",
        "amethod",
        "cls_outer",
        "cls_outer",
        "cls_inner",
        "static_outer",
        "static",
        "gen",
        "agen",
    ]
    # Bound methods: the instance is not in call.args (wrapt binds it into fn).
    assert seen.calls[0].args == (2,)
    assert inspect.signature(Client.method) == inspect.signature(Client.__dict__["method"])
    assert inspect.iscoroutinefunction(Client().amethod)


async def test_exceptions_from_async_functions_reach_async_layers() -> None:
    seen = Seen()

    @agent_turn(stack=Stack([seen]))
    async def broken() -> None:
        await asyncio.sleep(0)
        raise LookupError("upstream")

    with pytest.raises(LookupError):
        await broken()
    assert [type(e) for e in seen.errors] == [LookupError]


def test_model_from_decorator_or_model_kwarg() -> None:
    seen = Seen()

    @agent_turn(stack=Stack([seen]))
    def create(*, model: str, messages: list[str]) -> str:
        return model

    @agent_turn(model="fixed", stack=Stack([seen]))
    def fixed(*, model: str = "other") -> str:
        return model

    @agent_tool(stack=Stack([seen]))
    def tool(model: str) -> str:
        return model

    assert create(model="gpt-x", messages=[]) == "gpt-x"
    assert fixed() == "fixed"  # the decorator's model is what the function sends
    tool(model="ignored")
    assert [c.model for c in seen.calls] == ["gpt-x", "fixed", None]


def test_usage_callable_and_builtin_extraction() -> None:
    seen = Seen()

    @agent_turn(stack=Stack([seen]), usage=lambda r: Usage(r["in"], r["out"]))
    def custom() -> dict[str, int]:
        return {"in": 3, "out": 4}

    @agent_turn(stack=Stack([seen]))
    def builtin() -> dict[str, Any]:
        return {"usage": {"prompt_tokens": 5, "completion_tokens": 6}}

    @agent_turn(stack=Stack([seen]))
    def none() -> str:
        return "plain"

    custom()
    builtin()
    none()
    assert [c.usage for c in seen.calls] == [Usage(3, 4), Usage(5, 6), None]


def test_usage_must_be_callable() -> None:
    with pytest.raises(TypeError, match="usage"):
        agent_turn(usage=Usage(1, 1))(lambda: None)  # type: ignore[call-overload]  # not a callable


def test_non_callable_is_rejected() -> None:
    with pytest.raises(TypeError, match="callable"):
        agent_tool(42)  # type: ignore[call-overload]


async def test_stack_resolution_order(mode: str) -> None:
    log: list[tuple[str, str]] = []
    set_default_stack([Hooks(log, name="default")])
    agent = Agent("writer", stack=[Hooks(log, name="agent")])
    fn = make_fn(mode)
    plain = agent_turn(fn)
    fixed = agent_turn(stack=[Hooks(log, name="fixed")])(fn)

    await consume(mode, plain)
    assert [n for n, _ in log] == ["default", "default"]
    log.clear()
    with agent.session():
        await consume(mode, plain)
        assert [n for n, _ in log] == ["agent", "agent"]
        log.clear()
        await consume(mode, fixed)
        assert [n for n, _ in log] == ["fixed", "fixed"]
    log.clear()
    await consume(mode, plain)
    assert [n for n, _ in log] == ["default", "default"]


async def test_one_function_under_two_agents(mode: str) -> None:
    log: list[tuple[str, str]] = []
    writer = Agent("writer", stack=[Hooks(log, name="writer-layer")])
    editor = Agent("editor", stack=[Hooks(log, name="editor-layer")])
    draft = agent_turn(make_fn(mode))
    with writer.session() as ws:
        await consume(mode, draft)
    with editor.session() as es:
        await consume(mode, draft)
    assert log == [
        ("writer-layer", "before"),
        ("writer-layer", "after"),
        ("editor-layer", "before"),
        ("editor-layer", "after"),
    ]
    assert ws.iterations == 1
    assert es.iterations == 1


async def test_decorated_calls_count_in_the_session(mode: str) -> None:
    agent = Agent("a")
    turn = agent_turn(make_fn(mode))
    tool = agent_tool(make_fn(mode))
    with agent.session() as session:
        assert current_session() is session
        await consume(mode, turn)
        await consume(mode, tool)
        await consume(mode, tool)
    assert (session.iterations, session.tool_calls) == (1, 2)
    names = [e.name for e in session.events]
    assert names == [
        "agent.started",
        "turn.started",
        "turn.completed",
        "tool.called",
        "tool.completed",
        "tool.called",
        "tool.completed",
        "agent.completed",
    ]


@pytest.mark.parametrize("path", ["stream", "astream"])
async def test_streamed_usage_is_recorded(path: str) -> None:
    from agentmw.testing import ScriptedModel

    model = ScriptedModel(["hello world, streaming"], chunk_size=5)
    fn = agent_turn(model=model.model)(model.stream if path == "stream" else model.astream)
    with Agent("a").session() as session:
        chunks = await consume(path, fn)
    assert "".join(c.text for c in chunks) == "hello world, streaming"
    assert session.usage == chunks[-1].usage
    assert session.iterations == 1


class _ModelSeen(Middleware):
    """Records `call.model` as the stack sees it."""

    def __init__(self, seen: list[str | None]) -> None:
        super().__init__()
        self.seen = seen

    def before(self, call: Call) -> None:
        self.seen.append(call.model)


async def test_model_comes_from_the_functions_own_model_parameter(mode: str) -> None:
    seen: list[str | None] = []
    stack = Stack([_ModelSeen(seen)])

    if mode == "sync":

        @agent_turn(stack=stack)
        def ask(prompt: str, model: str = "default-model") -> str:
            return model

        assert ask("hi") == "default-model"
        assert ask("hi", "positional-model") == "positional-model"
        assert ask("hi", model="keyword-model") == "keyword-model"
    else:

        @agent_turn(stack=stack)
        async def aask(prompt: str, model: str = "default-model") -> str:
            return model

        assert await aask("hi") == "default-model"
        assert await aask("hi", "positional-model") == "positional-model"
        assert await aask("hi", model="keyword-model") == "keyword-model"
    assert seen == ["default-model", "positional-model", "keyword-model"]


def test_model_parameter_of_a_method_skips_self() -> None:
    seen: list[str | None] = []
    stack = Stack([_ModelSeen(seen)])

    class Client:
        @agent_turn(stack=stack)
        def ask(self, prompt: str, model: str = "m-default") -> str:
            return model

    client = Client()
    assert client.ask("hi") == "m-default"
    assert client.ask("hi", "m-positional") == "m-positional"
    assert seen == ["m-default", "m-positional"]


def test_decorator_model_is_the_default_and_functions_without_model_get_none() -> None:
    seen: list[str | None] = []
    stack = Stack([_ModelSeen(seen)])

    @agent_turn(model="fixed", stack=stack)
    def ask(prompt: str, model: str = "ignored") -> str:
        return prompt

    @agent_turn(stack=stack)
    def plain(prompt: str) -> str:
        return prompt

    ask("hi")
    ask("hi", model="sent")  # what the function actually sends wins over the default
    plain("hi")
    assert seen == ["fixed", "sent", None]
