"""The pydantic-ai capability against real pydantic-ai agents on its own `FunctionModel`.

Each test runs a pydantic-ai `Agent` whose model requests one tool call, then answers. The
three run paths (`run`, `run_sync`, `run_stream`) are parametrized where behaviour is shared.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RequestUsage

from agentmw import (
    Agent,
    AgentState,
    BudgetExceededError,
    Call,
    GuardrailViolation,
    Middleware,
    PermissionDeniedError,
    Session,
    Usage,
    register_pricing,
)
from agentmw.core.agent import AgentRegistry
from agentmw.guardrails import DenyPatterns, PIIRedactor
from agentmw.integrations.pydantic_ai import AgentMW, AgentMWModel, usage_from_pydantic_ai
from agentmw.middleware import (
    Budget,
    Checkpoint,
    Fallback,
    Guardrails,
    Limits,
    Permissions,
    Retry,
    Telemetry,
)
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.stores import InMemorySaver

from .sdk import spans

MODEL = "pa-fn-model"
MODES = ["run", "run_sync", "run_stream"]
FIRST = RequestUsage(input_tokens=100, output_tokens=10, cache_read_tokens=40, cache_write_tokens=5)
SECOND = RequestUsage(input_tokens=150, output_tokens=20, cache_read_tokens=90)


@pytest.fixture(scope="module", autouse=True)
def _prices() -> None:
    register_pricing(
        MODEL,
        {
            "input_per_million": 1,
            "output_per_million": 4,
            "cache_read_per_million": "0.1",
            "cache_write_per_million": 2,
        },
    )


def _tool_results(messages: list[ModelMessage]) -> list[Any]:
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    return [p for p in last.parts if isinstance(p, (ToolReturnPart, RetryPromptPart))]


class Script:
    """A model that asks for `lookup(query=...)` once, then answers with what it read."""

    def __init__(self, query: str = "weather in Paris") -> None:
        self.query = query
        self.requests = 0
        self.seen: list[Any] = []

    def reply(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        results = _tool_results(messages)
        if not results:
            call = ToolCallPart("lookup", {"query": self.query}, tool_call_id="call_1")
            return ModelResponse(parts=[call], usage=FIRST)
        self.seen.extend(results)
        return ModelResponse(parts=[TextPart(f"read: {results[0].content}")], usage=SECOND)

    async def stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        self.requests += 1
        results = _tool_results(messages)
        if not results:
            args = json.dumps({"query": self.query})
            yield {0: DeltaToolCall("lookup", args, tool_call_id="call_1")}
            return
        self.seen.extend(results)
        yield "read: "
        yield str(results[0].content)

    def model(self) -> FunctionModel:
        return FunctionModel(self.reply, stream_function=self.stream, model_name=MODEL)


def make_agent(script: Script, capability: AgentMW, calls: list[str]) -> PydanticAgent[None, str]:
    pa: PydanticAgent[None, str] = PydanticAgent(script.model(), capabilities=[capability])

    @pa.tool_plain
    def lookup(query: str) -> str:
        """Look something up."""
        calls.append(query)
        return f"sunny for {query}; ask ops@example.com"

    return pa


async def _arun(pa: PydanticAgent[None, str], mode: str, prompt: str) -> str:
    if mode == "run":
        return (await pa.run(prompt)).output
    async with pa.run_stream(prompt) as result:
        return await result.get_output()


def drive(pa: PydanticAgent[None, str], mode: str, prompt: str = "go") -> str:
    """Run `pa` on one prompt by `mode`; returns the output."""
    if mode == "run_sync":
        return pa.run_sync(prompt).output
    return asyncio.run(_arun(pa, mode, prompt))


def fresh(
    *, layers: tuple[Any, ...] = (), query: str = "weather in Paris"
) -> tuple[Script, list[str], Agent]:
    """A script, the list of tool calls it made, and an agentmw agent with `layers`."""
    return Script(query), [], new_agent(*layers)


def new_agent(*layers: Any, role: str = "researcher") -> Agent:
    return Agent(role, stack=list(layers), registry=AgentRegistry())


def only_session(agent: Agent) -> Session:
    sessions = agent.registry.finished()
    assert len(sessions) == 1
    return sessions[0]


def names(session: Session, prefix: str = "") -> list[str]:
    return [e.name for e in session.events if e.name.startswith(prefix)]


def expected_cost(*usages: Usage) -> Decimal:
    total = Decimal(0)
    for u in usages:
        uncached = u.input_tokens - u.cache_read_tokens - u.cache_write_tokens
        total += (
            uncached * Decimal(1)
            + u.output_tokens * Decimal(4)
            + u.cache_read_tokens * Decimal("0.1")
            + u.cache_write_tokens * Decimal(2)
        ) / Decimal(1_000_000)
    return total


def response_usages(pa_messages: list[ModelMessage]) -> list[Usage]:
    return [usage_from_pydantic_ai(m.usage) for m in pa_messages if isinstance(m, ModelResponse)]


@pytest.mark.parametrize("mode", MODES)
def test_requests_are_turns_and_tool_executions_are_tools(mode: str) -> None:
    script, calls, agent = fresh()
    pa = make_agent(script, AgentMW(agent), calls)
    captured: list[list[ModelMessage]] = []

    @pa.output_validator
    def keep(ctx: Any, output: str) -> str:
        captured.append(list(ctx.messages))
        return output

    output = drive(pa, mode)

    assert output.startswith("read: sunny for weather in Paris")
    assert calls == ["weather in Paris"]
    session = only_session(agent)
    assert session.state is AgentState.COMPLETED
    assert (session.iterations, session.tool_calls) == (2, 1)
    assert names(session, "turn.") == ["turn.started", "turn.completed"] * 2
    assert names(session, "tool.") == ["tool.called", "tool.completed"]
    tool_events = [e for e in session.events if e.name.startswith("tool.")]
    assert {e.tool for e in tool_events} == {"lookup"}
    assert [e.data["tool_call_id"] for e in tool_events] == ["call_1", "call_1"]
    turns = [e for e in session.events if e.name == "turn.completed"]
    assert {e.model for e in turns} == {MODEL}
    if mode == "run_stream":
        # FunctionModel counts streamed tokens as chunks arrive: the usage agentmw records is
        # the one pydantic-ai accumulated by the end of each stream, not the opening estimate.
        usages = [Usage(**e.data["usage"]) for e in turns]
        assert usages[1].output_tokens > 0
        assert sum(usages, Usage()) == session.usage
    else:
        usages = [usage_from_pydantic_ai(FIRST), usage_from_pydantic_ai(SECOND)]
        assert [Usage(**e.data["usage"]) for e in turns] == usages
        assert session.usage == Usage(250, 30, 130, 5)
    assert session.cost_usd == expected_cost(*usages)
    assert session.cost_usd > 0
    assert [Decimal(e.data["cost_usd"]) for e in turns] == [expected_cost(u) for u in usages]


def test_streamed_usage_matches_what_pydantic_ai_recorded() -> None:
    script, calls, agent = fresh()
    pa = make_agent(script, AgentMW(agent), calls)

    async def main() -> list[ModelMessage]:
        async with pa.run_stream("go") as result:
            await result.get_output()
        return result.all_messages()

    messages = asyncio.run(main())
    turns = [e for e in only_session(agent).events if e.name == "turn.completed"]
    assert [Usage(**e.data["usage"]) for e in turns] == response_usages(messages)


def test_an_open_session_is_used_and_left_open() -> None:
    script, calls, agent = fresh()
    pa = make_agent(script, AgentMW(agent), calls)
    with agent.session() as session:
        pa.run_sync("go")
        pa.run_sync("again")
        assert session.state is AgentState.RUNNING
        assert (session.iterations, session.tool_calls) == (4, 2)
    assert agent.registry.finished() == [session]


@pytest.mark.asyncio
async def test_an_open_async_session_is_used() -> None:
    script, calls, agent = fresh()
    pa = make_agent(script, AgentMW(agent), calls)
    async with agent.session() as session:
        await pa.run("go")
    assert (session.iterations, session.tool_calls) == (2, 1)
    assert agent.registry.finished() == [session]


def test_one_session_per_run_with_the_thread_id() -> None:
    script, calls, agent = fresh()
    pa = make_agent(script, AgentMW(agent, thread_id="t-42"), calls)
    pa.run_sync("go")
    pa.run_sync("again")
    sessions = agent.registry.finished()
    assert [s.thread_id for s in sessions] == ["t-42", "t-42"]
    assert [(s.iterations, s.tool_calls) for s in sessions] == [(2, 1), (2, 1)]


@pytest.mark.parametrize("mode", MODES)
def test_a_budget_stops_the_run_with_the_agentmw_error(mode: str) -> None:
    # The first request costs more than the budget: the second is refused before it is sent.
    script, calls, agent = fresh(layers=(Budget("0.000001", enforce=True),))
    pa = make_agent(script, AgentMW(agent), calls)
    with pytest.raises(BudgetExceededError, match=r"budget of \$0.000001 is spent"):
        drive(pa, mode)
    assert script.requests == 1
    assert calls == ["weather in Paris"]
    session = only_session(agent)
    assert session.state is AgentState.FAILED
    assert names(session, "turn.") == [
        "turn.started",
        "turn.completed",
        "turn.started",
        "turn.failed",
    ]
    assert "budget.exceeded" in names(session)


def _deny_lookup() -> Permissions:
    return Permissions(
        PermissionPolicy({"researcher": RolePermissions(allow=["*"], deny=["lookup"])})
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_tool_is_a_failure_the_model_reads(mode: str) -> None:
    script, calls, agent = fresh(layers=(_deny_lookup(),))
    pa = make_agent(script, AgentMW(agent), calls)
    output = drive(pa, mode)
    assert calls == []  # the tool never ran
    assert len(script.seen) == 1
    reply = str(script.seen[0].content)
    assert "agentmw refused this tool call: PermissionDeniedError" in reply
    assert reply.endswith("denied by pattern 'lookup'")
    assert output.startswith("read: ")
    session = only_session(agent)
    assert session.state is AgentState.COMPLETED
    assert session.tool_calls == 0  # a refusal is no tool call
    assert names(session, "tool.") == ["tool.called", "tool.blocked", "tool.failed"]
    failed = next(e for e in session.events if e.name == "tool.failed")
    assert failed.detail == "agentmw.errors.PermissionDeniedError"
    assert failed.data["tool_call_id"] == "call_1"


@pytest.mark.parametrize("mode", MODES)
def test_on_refusal_raise_ends_the_run(mode: str) -> None:
    script, calls, agent = fresh(layers=(_deny_lookup(),))
    pa = make_agent(script, AgentMW(agent, on_refusal="raise"), calls)
    with pytest.raises(PermissionDeniedError, match="may not call tool 'lookup'"):
        drive(pa, mode)
    assert calls == []
    assert only_session(agent).state is AgentState.FAILED


@pytest.mark.parametrize("mode", MODES)
def test_guardrails_see_tool_arguments_and_results(mode: str) -> None:
    # Arguments: a denied pattern blocks the call; the model reads the refusal.
    script, calls, agent = fresh(query="rm -rf /", layers=(Guardrails([DenyPatterns(["rm -rf"])]),))
    drive(make_agent(script, AgentMW(agent), calls), mode)
    assert calls == []
    assert "blocked" in str(script.seen[0].content)
    tool_events = names(only_session(agent), "tool.")
    assert (tool_events[0], tool_events[-1]) == ("tool.called", "tool.failed")
    assert "tool.completed" not in tool_events

    # Results: the e-mail address in the tool's result is redacted before the model reads it.
    script, calls, agent = fresh(layers=(Guardrails([PIIRedactor()]),))
    drive(make_agent(script, AgentMW(agent), calls), mode)
    assert calls == ["weather in Paris"]
    content = str(script.seen[0].content)
    assert "ops@example.com" not in content
    assert "[REDACTED:email]" in content


def test_guardrail_refusal_raises_with_on_refusal_raise() -> None:
    script, calls, agent = fresh(query="rm -rf /", layers=(Guardrails([DenyPatterns(["rm -rf"])]),))
    pa = make_agent(script, AgentMW(agent, on_refusal="raise"), calls)
    with pytest.raises(GuardrailViolation) as info:
        pa.run_sync("go")
    assert info.value.stage == "input"
    assert info.value.tool == "lookup"


def test_a_tool_limit_is_a_refusal_the_model_reads() -> None:
    script, calls, agent = fresh(layers=(Limits(max_tool_calls=0),))
    pa = make_agent(script, AgentMW(agent), calls)
    pa.run_sync("go")
    assert calls == []
    assert "max_tool_calls reached" in str(script.seen[0].content)


async def _no_wait(_seconds: float) -> None:
    return None


class Flaky:
    """Fails the first `failures` requests with a connection error, then follows `script`."""

    def __init__(self, script: Script, failures: int) -> None:
        self.script = script
        self.failures = failures

    def reply(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("reset by peer")
        return self.script.reply(messages, info)


def test_retry_resends_the_request_within_one_turn() -> None:
    script, calls = Script(), []
    agent = new_agent(Retry(3, asleep=_no_wait))
    flaky = Flaky(script, failures=1)
    pa: PydanticAgent[None, str] = PydanticAgent(
        FunctionModel(flaky.reply, model_name=MODEL), capabilities=[AgentMW(agent)]
    )

    @pa.tool_plain
    def lookup(query: str) -> str:
        calls.append(query)
        return "sunny"

    assert pa.run_sync("go").output == "read: sunny"
    session = only_session(agent)
    turns = [e for e in session.events if e.name == "turn.completed"]
    assert [e.data["attempts"] for e in turns] == [2, 1]
    assert session.iterations == 2


def test_a_model_failure_fails_the_turn_and_the_session() -> None:
    script, _, agent = fresh()
    pa: PydanticAgent[None, str] = PydanticAgent(
        FunctionModel(Flaky(script, failures=5).reply, model_name=MODEL),
        capabilities=[AgentMW(agent)],
    )
    with pytest.raises(ConnectionError):
        pa.run_sync("go")
    session = only_session(agent)
    assert names(session, "turn.") == ["turn.started", "turn.failed"]
    failed = next(e for e in session.events if e.name == "turn.failed")
    assert (failed.model, failed.detail) == (MODEL, "ConnectionError")
    assert session.state is AgentState.FAILED


def test_agentmw_model_reports_the_wrapped_model() -> None:
    inner = Script().model()
    wrapped = AgentMWModel(inner)
    assert wrapped.wrapped is inner
    assert (wrapped.model_name, wrapped.system) == (MODEL, "function")
    # The capability wraps each serving model once, never its own wrapper again.
    capability = AgentMW(new_agent())
    assert isinstance(capability.get_wrapper_model(inner), AgentMWModel)
    assert capability.get_wrapper_model(wrapped) is None


def test_usage_from_pydantic_ai_maps_every_field() -> None:
    usage = RequestUsage(
        input_tokens=10,
        output_tokens=7,
        cache_read_tokens=3,
        cache_write_tokens=2,
        details={"reasoning_tokens": 4},
    )
    usage.output_reasoning_tokens = 4
    assert usage_from_pydantic_ai(usage) == Usage(10, 7, 3, 2, 4)


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(TypeError, match="agent must be an agentmw Agent, got str"):
        AgentMW("researcher")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_refusal"):
        AgentMW(new_agent(), on_refusal="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="thread_id"):
        AgentMW(new_agent(), thread_id=" ")
    with pytest.raises(TypeError, match="thread_id"):
        AgentMW(new_agent(), thread_id=7)  # type: ignore[arg-type]


def test_without_pydantic_ai_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "pydantic_ai" or name.startswith("pydantic_ai."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pydantic_ai", None)
    monkeypatch.delitem(sys.modules, "agentmw.integrations.pydantic_ai")
    with pytest.raises(ImportError, match=r"pip install 'agentmw\[pydantic-ai\]'"):
        importlib.import_module("agentmw.integrations.pydantic_ai")


def test_a_guarded_stream_reaches_pydantic_ai_open() -> None:
    # Guardrails hold stream chunks back; the StreamedResponse still reaches pydantic-ai before
    # the turn reads its usage, and tool results are redacted on the streamed path too.
    script, calls, agent = fresh(layers=(Guardrails([PIIRedactor()]),))
    pa = make_agent(script, AgentMW(agent), calls)

    async def main() -> tuple[str, list[ModelMessage]]:
        async with pa.run_stream("go") as result:
            output = await result.get_output()
        return output, result.all_messages()

    output, messages = asyncio.run(main())
    assert output == "read: sunny for weather in Paris; ask [REDACTED:email]"
    session = only_session(agent)
    assert (session.iterations, session.tool_calls) == (2, 1)
    turns = [e for e in session.events if e.name == "turn.completed"]
    assert [Usage(**e.data["usage"]) for e in turns] == response_usages(messages)


def test_stopping_a_stream_early_completes_the_turn_and_fails_the_session() -> None:
    # pydantic-ai closes the model stream itself when the consumer raises: the turn got what it
    # was asked for (agentmw's rule for a consumer that stops early), the run fails.
    script, calls, agent = fresh()
    pa = make_agent(script, AgentMW(agent), calls)

    async def main() -> None:
        async with pa.run_stream("go") as result:
            async for _ in result.stream_text(delta=True):
                raise KeyError("consumer")

    with pytest.raises(KeyError):
        asyncio.run(main())
    session = only_session(agent)
    assert names(session, "turn.") == ["turn.started", "turn.completed"] * 2
    assert session.state is AgentState.FAILED
    assert session.events[-1].detail == "KeyError"


async def _broken_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
    yield "read: "
    raise ConnectionError("reset by peer")


def test_a_stream_failing_while_pydantic_ai_reads_it_fails_the_turn() -> None:
    # After its first chunk a stream is pydantic-ai's: Retry does not resend it.
    _, _, agent = fresh(layers=(Retry(3, asleep=_no_wait),))
    pa: PydanticAgent[None, str] = PydanticAgent(
        FunctionModel(stream_function=_broken_stream, model_name=MODEL),
        capabilities=[AgentMW(agent)],
    )

    async def main() -> str:
        async with pa.run_stream("go") as result:
            return await result.get_output()

    with pytest.raises(ConnectionError):
        asyncio.run(main())
    session = only_session(agent)
    assert names(session, "turn.") == ["turn.started", "turn.failed"]
    failed = next(e for e in session.events if e.name == "turn.failed")
    assert (failed.model, failed.detail) == (MODEL, "ConnectionError")
    assert session.state is AgentState.FAILED


class FlakyStream:
    """A stream function that fails before its first chunk `failures` times."""

    def __init__(self, script: Script, failures: int) -> None:
        self.script = script
        self.failures = failures

    async def stream(
        self, messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("reset by peer")
        async for chunk in self.script.stream(messages, info):
            yield chunk


def test_retry_reopens_a_stream_that_failed_before_its_first_chunk() -> None:
    script, calls, agent = fresh(layers=(Retry(3, asleep=_no_wait),))
    flaky = FlakyStream(script, failures=1)
    pa: PydanticAgent[None, str] = PydanticAgent(
        FunctionModel(stream_function=flaky.stream, model_name=MODEL),
        capabilities=[AgentMW(agent)],
    )

    @pa.tool_plain
    def lookup(query: str) -> str:
        calls.append(query)
        return "sunny"

    async def main() -> str:
        async with pa.run_stream("go") as result:
            return await result.get_output()

    assert asyncio.run(main()) == "read: sunny"
    turns = [e for e in only_session(agent).events if e.name == "turn.completed"]
    assert [e.data["attempts"] for e in turns] == [2, 1]


class Echo:
    """A model that answers with the user's prompt as it received it (and records it)."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def _prompt(self, messages: list[ModelMessage]) -> str:
        first = messages[0]
        assert isinstance(first, ModelRequest)
        prompt = next(p for p in first.parts if isinstance(p, UserPromptPart))
        self.received.append(str(prompt.content))
        return str(prompt.content)

    def reply(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("you said: " + self._prompt(messages))])

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "you said: "
        yield self._prompt(messages)


def echo_agent(agent: Agent) -> tuple[Echo, PydanticAgent[None, str]]:
    echo = Echo()
    model = FunctionModel(echo.reply, stream_function=echo.stream, model_name=MODEL)
    return echo, PydanticAgent(model, capabilities=[AgentMW(agent)])


PROMPT = "mail bob@example.com the plan"


@pytest.mark.parametrize("mode", ["run", "run_sync"])
def test_guardrails_redact_what_the_model_reads_and_writes(mode: str) -> None:
    agent = new_agent(Guardrails([PIIRedactor()]))
    echo, pa = echo_agent(agent)
    result = pa.run_sync(PROMPT) if mode == "run_sync" else asyncio.run(pa.run(PROMPT))
    assert echo.received == ["mail [REDACTED:email] the plan"]
    assert result.output == "you said: mail [REDACTED:email] the plan"
    # pydantic-ai's history keeps what the user sent; the model got the redacted copy.
    first = result.all_messages()[0]
    assert isinstance(first, ModelRequest)
    assert any(getattr(p, "content", None) == PROMPT for p in first.parts)
    replaced = [
        e.data["stage"] for e in only_session(agent).events if e.name == "guardrail.replaced"
    ]
    assert replaced == ["input"]


def test_a_streamed_reply_is_checked_but_a_late_replacement_warns() -> None:
    agent = new_agent(Guardrails([PIIRedactor()]))
    echo, pa = echo_agent(agent)

    async def main() -> str:
        async with pa.run_stream("say ops@example.com") as result:
            return await result.get_output()

    # The prompt is redacted before the model reads it; the reply echoes that, so nothing late.
    assert asyncio.run(main()) == "you said: say [REDACTED:email]"
    assert echo.received == ["say [REDACTED:email]"]

    class Leaky(Echo):
        async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
            yield "reach me at dana@example.com"

    leaky = Leaky()
    pa = PydanticAgent(
        FunctionModel(leaky.reply, stream_function=leaky.stream, model_name=MODEL),
        capabilities=[AgentMW(new_agent(Guardrails([PIIRedactor()])))],
    )
    import agentmw.integrations.pydantic_ai as adapter

    adapter._late_warned.clear()
    with pytest.warns(RuntimeWarning, match="replaced the text of a streamed pydantic-ai"):
        assert asyncio.run(main_for(pa)) == "reach me at dana@example.com"


async def main_for(pa: PydanticAgent[None, str]) -> str:
    async with pa.run_stream("hi") as result:
        return await result.get_output()


@pytest.mark.parametrize("mode", MODES)
def test_a_blocked_prompt_ends_the_run_before_the_model_reads_it(mode: str) -> None:
    script, calls, agent = fresh(layers=(Guardrails([DenyPatterns(["secret project"])]),))
    pa = make_agent(script, AgentMW(agent), calls)

    with pytest.raises(GuardrailViolation) as info:
        drive(pa, mode, "tell me about the secret project")
    assert (info.value.stage, info.value.tool) == ("input", None)
    assert script.requests == 0
    session = only_session(agent)
    assert names(session, "turn.") == ["turn.started", "turn.blocked", "turn.failed"]


def test_checkpoint_replays_a_finished_thread_without_calling_model_or_tool() -> None:
    saver = InMemorySaver()
    script, calls, agent = fresh(layers=(Checkpoint(saver),))
    pa = make_agent(script, AgentMW(agent, thread_id="pa-thread"), calls)
    first = pa.run_sync("go").output
    assert (script.requests, calls) == (2, ["weather in Paris"])

    # The same thread again (a resumed process): every step comes from the checkpoint, even
    # though pydantic-ai stamps the new run's messages with a new time.
    again = pa.run_sync("go").output
    assert again == first
    assert (script.requests, calls) == (2, ["weather in Paris"])
    second = agent.registry.finished()[-1]
    replayed = [e.data["checkpoint_step"] for e in second.events if e.name == "checkpoint.replayed"]
    assert replayed == [1, 2, 3]
    assert second.usage == only_usage(agent.registry.finished()[0])


def only_usage(session: Session) -> Usage:
    return session.usage


class AnswersStreams(Middleware):
    """A layer that answers a streamed turn itself, never opening the stream."""

    async def ahandle_stream(self, call: Call, call_next: Any) -> AsyncIterator[Any]:
        yield "from a cache"


def test_a_layer_answering_a_stream_itself_is_a_clear_error() -> None:
    script, calls, agent = fresh(layers=(AnswersStreams(kinds="turn"),))
    pa = make_agent(script, AgentMW(agent), calls)
    with pytest.raises(RuntimeError, match="without opening the stream"):
        drive(pa, "run_stream")
    assert script.requests == 0


def test_fallback_sends_the_request_to_the_next_model() -> None:
    # The primary always fails; Fallback switches the turn's model to "test", which the adapter
    # builds with pydantic-ai's `infer_model` (its offline `TestModel`).
    script, _, agent = fresh(layers=(Fallback(["test"]), Retry(1, asleep=_no_wait)))
    pa: PydanticAgent[None, str] = PydanticAgent(
        FunctionModel(Flaky(script, failures=99).reply, model_name=MODEL),
        capabilities=[AgentMW(agent)],
    )
    result = pa.run_sync("go")
    assert result.output == "success (no tool calls)"
    session = only_session(agent)
    turns = [e for e in session.events if e.name == "turn.completed"]
    assert [e.model for e in turns] == ["test"]
    assert "fallback.switched" in names(session)


def test_an_output_tool_is_no_tool_call() -> None:
    # pydantic-ai serves a structured output_type with an output tool, through its output
    # hooks (not wrap_tool_execute): the turn that produced it is accounted for, no tool is.
    class City(BaseModel):
        name: str

    agent = new_agent()
    pa = PydanticAgent(TestModel(), output_type=City, capabilities=[AgentMW(agent)])
    assert isinstance(pa.run_sync("where").output, City)
    session = only_session(agent)
    assert (session.iterations, session.tool_calls) == (1, 0)
    assert names(session, "tool.") == []


@pytest.mark.parametrize("mode", MODES)
def test_telemetry_spans_carry_the_model_provider_usage_and_tool_call_id(mode: str) -> None:
    provider, exporter = spans()
    script, calls, agent = fresh(layers=(Telemetry(tracer_provider=provider),))
    drive(make_agent(script, AgentMW(agent), calls), mode)
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(finished) == [
        "chat pa-fn-model",
        "execute_tool lookup",
        "invoke_agent researcher",
    ]
    chat = finished["chat pa-fn-model"].attributes or {}
    assert (chat["gen_ai.provider.name"], chat["gen_ai.request.model"]) == ("function", MODEL)
    tool = finished["execute_tool lookup"].attributes or {}
    assert tool["gen_ai.tool.call.id"] == "call_1"
    chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    inputs = [(s.attributes or {})["gen_ai.usage.input_tokens"] for s in chats]
    turns = [e for e in only_session(agent).events if e.name == "turn.completed"]
    assert inputs == [e.data["usage"]["input_tokens"] for e in turns]


def test_retry_outside_guardrails_never_resends_a_stream_pydantic_ai_read() -> None:
    # Guardrails hold the first chunk back, so an outer Retry saw no chunk when the stream
    # broke mid-read: the resend is refused, the model was asked once, the run ends.
    calls: list[int] = []

    async def broken(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
        calls.append(1)
        yield "read: "
        raise ConnectionError("reset by peer")

    agent = new_agent(Retry(3, asleep=_no_wait), Guardrails([PIIRedactor()]))
    pa: PydanticAgent[None, str] = PydanticAgent(
        FunctionModel(stream_function=broken, model_name=MODEL), capabilities=[AgentMW(agent)]
    )
    with pytest.raises(ConnectionError):
        drive(pa, "run_stream")
    assert calls == [1]
    failed = next(e for e in only_session(agent).events if e.name == "turn.failed")
    assert failed.detail == "RuntimeError"


def test_checkpoint_runs_streamed_requests_live_and_replays_the_tools() -> None:
    # A streamed request yields pydantic-ai's live StreamedResponse: Checkpoint never stores
    # it, so a resumed thread streams the model again while its tool calls replay.
    saver = InMemorySaver()
    script, calls, agent = fresh(layers=(Checkpoint(saver),))
    pa = make_agent(script, AgentMW(agent, thread_id="pa-stream"), calls)
    first = drive(pa, "run_stream", "go")
    assert [(r.kind, r.name) for r in saver.get_steps("pa-stream")] == [("tool", "lookup")]
    again = drive(pa, "run_stream", "go")
    assert again == first
    assert calls == ["weather in Paris"]  # the tool replayed
    assert script.requests == 4  # the model streamed both times
