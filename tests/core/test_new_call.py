"""`new_call`: the one place that builds a `Call` by position puts every argument in its field."""

from __future__ import annotations

import dataclasses
from typing import Any

from agentmw import Agent, Call
from agentmw.core.call import call_builder, new_call, plain_call


def _fn() -> None:
    """A stand-in for the wrapped function."""


def test_every_argument_lands_in_its_field() -> None:
    agent = Agent("writer")
    session = agent.session()
    args, kwargs, meta = ("a",), {"k": 1}, {"x": 2}

    def usage_fn(result: Any) -> None:
        return None

    def key(call: Call) -> str:
        return "k"

    call = new_call(
        "tool",
        "search",
        _fn,
        model="m",
        args=args,
        kwargs=kwargs,
        session=session,
        meta=meta,
        stream=True,
        usage_fn=usage_fn,
        provider="openai",
        tool_call_id="call_1",
        effects="once",
        checkpoint_key=key,
        takes_idempotency_key=True,
    )
    expected = Call(
        kind="tool",
        name="search",
        fn=_fn,
        model="m",
        args=args,
        kwargs=kwargs,
        session=session,
        agent=agent,
        meta=meta,
        stream=True,
        usage_fn=usage_fn,
        provider="openai",
        tool_call_id="call_1",
        effects="once",
        checkpoint_key=key,
        takes_idempotency_key=True,
    )
    assert call.idempotency_key is None  # Checkpoint or the terminal sets it
    for field in dataclasses.fields(Call):
        got, want = getattr(call, field.name), getattr(expected, field.name)
        assert got is want or got == want, field.name


def test_defaults_match_the_dataclass_defaults() -> None:
    call = new_call("turn", "ask", _fn)
    plain = Call(kind="turn", name="ask", fn=_fn)
    for field in dataclasses.fields(Call):
        assert getattr(call, field.name) == getattr(plain, field.name), field.name
    assert call.kwargs is not new_call("turn", "ask", _fn).kwargs  # never a shared dict
    assert call.meta is not new_call("turn", "ask", _fn).meta
    assert call.cost_usd is None
    assert call.attempt == 1
    assert call.step == 0
    assert call.agent is None


def test_call_fields_that_layers_share_are_typed_fields() -> None:
    names = {f.name for f in dataclasses.fields(Call)}
    assert {"estimate", "cost_usd", "provider", "stream_offset", "usage_estimated"} <= names
    assert {"tool_call_id", "observers"} <= names
    assert {"idempotency_key", "effects", "checkpoint_key", "takes_idempotency_key"} <= names


def test_the_decorators_builder_matches_new_call_field_for_field() -> None:
    agent = Agent("writer")
    session = agent.session()

    def usage_fn(result: Any) -> None:
        return None

    def key(call: Call) -> str:
        return "k"

    fixed: dict[str, Any] = {
        "stream": True,
        "usage_fn": usage_fn,
        "provider": "openai",
        "effects": "once",
        "checkpoint_key": key,
        "takes_idempotency_key": True,
    }
    build = call_builder("tool", "search", **fixed)
    args, kwargs = ("a",), {"k": 1}
    call = build(_fn, "m", args, kwargs, session, "call_1")
    expected = new_call(
        "tool",
        "search",
        _fn,
        model="m",
        args=args,
        kwargs=kwargs,
        session=session,
        tool_call_id="call_1",
        **fixed,
    )
    for field in dataclasses.fields(Call):
        got, want = getattr(call, field.name), getattr(expected, field.name)
        assert got is want or got == want, field.name
    assert call.agent is agent
    plain = call_builder("turn", "ask")(_fn, None, (), {}, None, None)
    default = Call(kind="turn", name="ask", fn=_fn)
    for field in dataclasses.fields(Call):
        assert getattr(plain, field.name) == getattr(default, field.name), field.name
    assert build(_fn, "m", (), {}, None, None).meta is not plain.meta  # never a shared dict


def test_the_imperative_builder_matches_new_call_field_for_field() -> None:
    agent = Agent("writer")
    session = agent.session()

    def usage_fn(result: Any) -> None:
        return None

    args, kwargs = ("a",), {"k": 1}
    call = plain_call("turn", "ask", _fn, "m", args, kwargs, session, usage_fn)
    expected = new_call(
        "turn", "ask", _fn, model="m", args=args, kwargs=kwargs, session=session,
        usage_fn=usage_fn,
    )  # fmt: skip
    for field in dataclasses.fields(Call):
        got, want = getattr(call, field.name), getattr(expected, field.name)
        assert got is want or got == want, field.name
    assert call.agent is agent
    plain = plain_call("tool", "t", _fn, None, (), {}, None, None)
    default = Call(kind="tool", name="t", fn=_fn)
    for field in dataclasses.fields(Call):
        assert getattr(plain, field.name) == getattr(default, field.name), field.name
    assert plain.meta is not plain_call("tool", "t", _fn, None, (), {}, None, None).meta
