from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentmw import Call, ControlFlowError, Middleware, agent_turn
from agentmw.classify import Failure, FailureScenario
from agentmw.middleware import Retry
from agentmw.testing import FakeClock, ScriptedModel, capture_events
from tests.errors import http
from tests.middleware.reliability import run_tool, run_turn

S = FailureScenario


def retry(clock: FakeClock, attempts: int = 3, **kwargs: Any) -> Retry:
    return Retry(
        attempts, jitter="none", base=1.0, sleep=clock.sleep, asleep=clock.asleep, **kwargs
    )


def test_success_path_makes_one_call(mode: str) -> None:
    clock = FakeClock()
    model = ScriptedModel(["ok"])
    result, session = run_turn(mode, [retry(clock)], model)
    assert result.text == "ok"
    assert len(model.calls) == 1
    assert clock.sleeps == []
    assert session.recoveries == []


def test_retries_then_succeeds_with_backoff_delays(mode: str) -> None:
    clock = FakeClock()
    model = ScriptedModel([http(503), http(500), "ok"])
    with capture_events() as events:
        result, session = run_turn(mode, [retry(clock)], model)
    assert result.text == "ok"
    assert len(model.calls) == 3
    assert clock.sleeps == [1.0, 2.0]
    scheduled = [e.data for e in events.named("retry.scheduled")]
    assert scheduled == [
        {"attempt": 2, "scenario": "overloaded", "delay": 1.0},
        {"attempt": 3, "scenario": "server_error", "delay": 2.0},
    ]
    assert [r["action"] for r in session.recoveries] == ["retry", "retry"]
    assert session.summary()["recoveries"][0]["scenario"] == "overloaded"
    completed = events.named("turn.completed")[0]
    assert completed.data["attempts"] == 3


def test_exhausted_reraises_last_exception_with_note(mode: str) -> None:
    clock = FakeClock()
    first, last = http(503), http(502, message="secret prompt text")
    model = ScriptedModel([first, http(500), last])
    with capture_events() as events:
        result, session = run_turn(mode, [retry(clock)], model)
    assert result is last
    assert len(model.calls) == 3
    assert clock.sleeps == [1.0, 2.0]
    (note,) = last.__notes__
    assert "attempt 1: overloaded, retried after 1s" in note
    assert "attempt 3: server_error" in note
    assert "exhausted" in note
    assert "secret" not in note
    assert events.named("retry.exhausted")[0].data["attempt"] == 3
    assert session.recoveries[-1]["action"] == "exhausted"


def test_not_retryable_fails_at_once_without_note(mode: str) -> None:
    clock = FakeClock()
    error = http(400)
    model = ScriptedModel([error])
    result, _ = run_turn(mode, [retry(clock)], model)
    assert result is error
    assert len(model.calls) == 1
    assert not getattr(error, "__notes__", None)


def test_control_flow_never_retried_even_when_asked(mode: str) -> None:
    clock = FakeClock()
    error = ControlFlowError("budget")
    model = ScriptedModel([error, "ok"])
    layer = retry(clock, on=lambda failure: True)
    result, _ = run_turn(mode, [layer], model)
    assert result is error
    assert len(model.calls) == 1


def test_retry_after_is_honoured(mode: str) -> None:
    clock = FakeClock()
    model = ScriptedModel([http(429, headers={"retry-after": "7"}), "ok"])
    result, _ = run_turn(mode, [retry(clock)], model)
    assert result.text == "ok"
    assert clock.sleeps == [7.0]


def test_retry_after_over_the_cap_gives_up_at_once(mode: str) -> None:
    clock = FakeClock()
    error = http(429, headers={"retry-after": "600"})
    model = ScriptedModel([error, "ok"])
    with capture_events() as events:
        result, _ = run_turn(mode, [retry(clock, max_retry_after=60.0)], model)
    assert result is error
    assert clock.sleeps == []
    assert len(model.calls) == 1
    assert events.named("retry.exhausted")[0].data["reason"] == "retry_after_too_long"


def test_retry_after_ignored_when_not_respected(mode: str) -> None:
    clock = FakeClock()
    model = ScriptedModel([http(429, headers={"retry-after": "600"}), "ok"])
    result, _ = run_turn(mode, [retry(clock, respect_retry_after=False)], model)
    assert result.text == "ok"
    assert clock.sleeps == [1.0]


def test_on_scenarios_and_predicate(mode: str) -> None:
    clock = FakeClock()
    model = ScriptedModel([http(404), "ok"])
    result, _ = run_turn(mode, [retry(clock, on=[S.NOT_FOUND])], model)
    assert result.text == "ok"
    model = ScriptedModel([http(503), "ok"])
    result, _ = run_turn(mode, [retry(clock, on=["not_found"])], model)
    assert result.status_code == 503
    model = ScriptedModel([http(503), http(503), "ok"])
    seen: list[Failure] = []

    def record(failure: Failure) -> bool:
        seen.append(failure)
        return True

    result, _ = run_turn(mode, [retry(clock, on=record)], model)
    assert result.text == "ok"
    assert [f.status_code for f in seen] == [503, 503]


def test_recover_hook_changes_the_next_attempt(mode: str) -> None:
    clock = FakeClock()
    model = ScriptedModel([http(400, code="context_length_exceeded"), "short ok"])

    def shorten(call: Call, failure: Failure) -> Call:
        assert failure.scenario is S.CONTEXT_OVERFLOW
        call.kwargs["prompt"] = call.kwargs["prompt"][:5]
        return call

    layer = retry(clock, on=[S.CONTEXT_OVERFLOW], recover={S.CONTEXT_OVERFLOW: shorten})
    result, session = run_turn(mode, [layer], model, prompt="a very long prompt")
    assert result.text == "short ok"
    assert [kw["prompt"] for _, kw in model.calls] == ["a very long prompt", "a ver"]
    assert [r["action"] for r in session.recoveries] == ["recovered", "retry"]


def test_recover_returning_none_gives_up(mode: str) -> None:
    clock = FakeClock()
    error = http(503)
    model = ScriptedModel([error, "ok"])
    layer = retry(clock, recover={"overloaded": lambda call, failure: None})
    result, _ = run_turn(mode, [layer], model)
    assert result is error
    assert len(model.calls) == 1
    assert "recover_declined" in error.__notes__[0]


def test_unknown_tool_errors_are_tool_errors(mode: str) -> None:
    clock = FakeClock()
    calls: list[int] = []

    def tool() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("bad input")
        return "ok"

    async def atool() -> str:
        return tool()

    result, _ = run_tool(mode, [retry(clock)], "lookup", tool, atool)
    assert isinstance(result, ValueError)
    assert len(calls) == 1
    calls.clear()
    result, _ = run_tool(mode, [retry(clock, on=[S.TOOL_ERROR])], "lookup", tool, atool)
    assert result == "ok"
    assert len(calls) == 2


def test_attempt_number_increments_per_attempt(mode: str) -> None:
    clock = FakeClock()
    attempts: list[int] = []

    class Seen(Middleware):
        def before(self, call: Call) -> None:
            attempts.append(call.attempt)

    model = ScriptedModel([TimeoutError(), TimeoutError(), "ok"])
    run_turn(mode, [retry(clock), Seen()], model)
    assert attempts == [1, 2, 3]


def test_invalid_options_name_the_argument() -> None:
    for kwargs, word in [
        ({"attempts": 0}, "attempts"),
        ({"jitter": "x"}, "jitter"),
        ({"base": -1}, "base"),
        ({"on": "timeout"}, "on"),
        ({"on": ["nope"]}, "on"),
        ({"recover": {"nope": lambda c, f: c}}, "recover"),
        ({"max_retry_after": float("nan")}, "max_retry_after"),
    ]:
        with pytest.raises(ValueError, match=word):
            Retry(**kwargs)  # type: ignore[arg-type]


def test_wrong_types_name_the_argument() -> None:
    for kwargs, message in [
        ({"attempts": True}, "attempts must be an int, got bool True"),
        ({"respect_retry_after": "yes"}, "respect_retry_after must be True or False"),
        ({"sleep": 5}, "sleep must be a callable taking seconds, got int 5"),
        ({"asleep": 5}, "asleep must be an async callable taking seconds, got int 5"),
        ({"recover": [1]}, "recover must be a mapping scenario -> callable"),
        ({"recover": {"timeout": 3}}, r"recover\['timeout'\] must be a callable"),
    ]:
        with pytest.raises(TypeError, match=message):
            Retry(**kwargs)  # type: ignore[arg-type]


def test_standalone_call_and_acall() -> None:
    clock = FakeClock()
    layer = retry(clock)
    model = ScriptedModel([ConnectionResetError(), "ok"])
    assert layer.call(model, "hi").text == "ok"
    assert model.calls[1] == (("hi",), {})
    model = ScriptedModel([ConnectionResetError(), ConnectionResetError(), ConnectionResetError()])
    with pytest.raises(ConnectionResetError) as info:
        asyncio.run(layer.acall(model.acall, "hi"))
    assert "attempt 3" in info.value.__notes__[0]
    assert clock.sleeps == [1.0, 1.0, 2.0]


def test_cancellation_is_not_retried() -> None:
    clock = FakeClock()
    layer = retry(clock)
    calls: list[int] = []

    async def hang() -> None:
        calls.append(1)
        await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(layer.acall(hang))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert calls == [1]


def _stream_model(script: list[Any]) -> ScriptedModel:
    return ScriptedModel(script, chunk_size=2)


def test_stream_retries_before_first_chunk(mode: str) -> None:
    clock = FakeClock()
    model = _stream_model([http(503), "hello"])
    layer = retry(clock)

    if mode == "sync":

        @agent_turn(stack=[layer])
        def talk() -> Any:
            yield from model.stream()

        chunks = [c.text for c in talk()]
    else:

        @agent_turn(stack=[layer])
        async def atalk() -> Any:
            async for chunk in model.astream():
                yield chunk

        async def collect() -> list[str]:
            return [c.text async for c in atalk()]

        chunks = asyncio.run(collect())
    assert "".join(chunks) == "hello"
    assert clock.sleeps == [1.0]


def test_stream_never_retries_after_first_chunk(mode: str) -> None:
    clock = FakeClock()
    layer = retry(clock)
    starts: list[int] = []

    def gen() -> Any:
        starts.append(1)
        yield "a"
        raise TimeoutError

    async def agen() -> Any:
        starts.append(1)
        yield "a"
        raise TimeoutError

    got: list[str] = []

    def consume() -> None:
        if mode == "sync":
            for chunk in agent_turn(stack=[layer])(gen)():
                got.append(chunk)
            return

        async def aconsume() -> None:
            async for chunk in agent_turn(stack=[layer])(agen)():
                got.append(chunk)

        asyncio.run(aconsume())

    with pytest.raises(TimeoutError):
        consume()
    assert got == ["a"]
    assert starts == [1]
    assert clock.sleeps == []
