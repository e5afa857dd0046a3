"""The OpenAI Agents SDK adapter against the real SDK: `Runner.run`, `run_sync`, `run_streamed`
with the SDK's own scripted `Model` (no network)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from agents import Agent as SDKAgent
from agents import RunConfig, Runner, function_tool
from agents.exceptions import UserError
from agents.models.interface import Model, ModelProvider
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage as SDKUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from agentmw import Agent, Stack
from agentmw.errors import BudgetExceededError, PermissionDeniedError
from agentmw.guardrails import DenyPatterns, PIIRedactor
from agentmw.integrations.openai_agents import (
    AgentMWModel,
    AgentMWModelProvider,
    ModelOutput,
    usage_from_sdk,
    wrap_tool,
    wrap_tools,
)
from agentmw.middleware import Budget, Checkpoint, Fallback, Guardrails, Permissions, Telemetry
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.pricing import ModelPricing, register_pricing
from agentmw.stores import InMemorySaver
from agentmw.usage import Usage

from .sdk import spans

MODEL = "fake-agents-model"
HOWS = ["run_sync", "run", "run_streamed"]


def sdk_usage(inp: int, out: int, cached: int = 0, written: int = 0, reasoning: int = 0) -> Any:
    return SDKUsage(
        requests=1,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out,
        input_tokens_details=InputTokensDetails(cached_tokens=cached, cache_write_tokens=written),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=reasoning),
    )


class Provider(ModelProvider):
    """Hands out one scripted model for every name (what a real provider resolves)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.names: list[str | None] = []

    def get_model(self, model_name: str | None) -> Model:
        self.names.append(model_name)
        return self.model


class Weather:
    """A function tool that counts its calls and records its arguments."""

    def __init__(self, reply: str = "sunny in {city}") -> None:
        self.calls: list[str] = []
        self.reply = reply

        @function_tool
        def get_weather(city: str) -> str:
            """The weather in a city."""
            self.calls.append(city)
            return self.reply.format(city=city)

        self.tool = get_weather


def script(city: str = "Paris", answer: str = "It is sunny") -> ScriptedModel:
    return ScriptedModel(
        [
            ModelStep(
                output=[function_call("get_weather", {"city": city}, call_id="call-1")],
                usage=sdk_usage(100, 10, cached=40, reasoning=5),
            ),
            ModelStep(output=[assistant_message(answer)], usage=sdk_usage(150, 20)),
        ]
    )


def execute(
    how: str,
    mw: Agent,
    agent: SDKAgent[Any],
    provider: ModelProvider | None = None,
    thread_id: str | None = None,
) -> tuple[Any, Any, BaseException | None]:
    """Run `agent` inside one session of `mw`: (session, final output, error)."""
    config = RunConfig(model_provider=provider, tracing_disabled=True) if provider else None
    kwargs: dict[str, Any] = {"run_config": config} if config else {}
    kwargs.setdefault("run_config", RunConfig(tracing_disabled=True))
    session = mw.session(thread_id)
    if how == "run_sync":
        try:
            with session:
                result = Runner.run_sync(agent, "weather?", **kwargs)
        except Exception as exc:
            return session, None, exc
        return session, result.final_output, None

    async def main() -> Any:
        async with session:
            if how == "run":
                return (await Runner.run(agent, "weather?", **kwargs)).final_output
            streamed = Runner.run_streamed(agent, "weather?", **kwargs)
            async for _ in streamed.stream_events():
                pass
            return streamed.final_output

    try:
        return session, asyncio.run(main()), None
    except Exception as exc:
        return session, None, exc


def setup(
    stack: Stack | None = None, *, on_refusal: str = "message", model: ScriptedModel | None = None
) -> tuple[Agent, SDKAgent[Any], Weather, ScriptedModel, Provider]:
    weather = Weather()
    scripted = model or script()
    provider = Provider(scripted)
    mw = Agent("weather-bot", stack=stack or Stack())
    agent = SDKAgent(
        name="assistant", model=MODEL, tools=wrap_tools([weather.tool], on_refusal=on_refusal)
    )
    return mw, agent, weather, scripted, provider


@pytest.fixture(autouse=True)
def _prices() -> None:
    register_pricing(
        MODEL,
        ModelPricing(input_per_million=1000, output_per_million=2000, cache_read_per_million=500),
    )


@pytest.mark.parametrize("how", HOWS)
def test_turns_tools_usage_cost_and_events(how: str) -> None:
    mw, agent, weather, scripted, provider = setup()
    session, output, error = execute(how, mw, agent, AgentMWModelProvider(provider))
    assert error is None
    assert output == "It is sunny"
    assert weather.calls == ["Paris"]
    assert provider.names == [MODEL, MODEL]  # the SDK asks once per turn
    assert session.iterations == 2
    assert session.tool_calls == 1
    assert session.usage == Usage(
        input_tokens=250, output_tokens=30, cache_read_tokens=40, reasoning_tokens=5
    )
    # (60 uncached * 1000 + 40 cached * 500 + 10 out * 2000) / 1e6 + (150 * 1000 + 20 * 2000) / 1e6
    assert session.cost_usd == Decimal("0.29")
    assert session.ledger.summary()["models"][MODEL]["calls"] == 2
    names = [e.name for e in session.events]
    assert names == [
        "agent.started",
        "turn.started",
        "turn.completed",
        "tool.called",
        "tool.completed",
        "turn.started",
        "turn.completed",
        "agent.completed",
    ]
    tool_events = [e for e in session.events if e.tool == "get_weather"]
    assert [e.data["tool_call_id"] for e in tool_events] == ["call-1", "call-1"]
    turns = [e for e in session.events if e.name == "turn.completed"]
    assert {e.model for e in turns} == {MODEL}
    assert turns[0].data["usage"]["cache_read_tokens"] == 40
    assert turns[0].data["cost_usd"] == "0.1"
    assert [c.streamed for c in scripted.calls] == [how == "run_streamed"] * 2


@pytest.mark.parametrize("how", HOWS)
def test_a_budget_stops_the_run_with_the_agentmw_error(how: str) -> None:
    mw, agent, weather, scripted, provider = setup(Stack([Budget("0.05", enforce=True)]))
    session, output, error = execute(how, mw, agent, AgentMWModelProvider(provider))
    assert isinstance(error, BudgetExceededError)
    assert error.budget_usd == Decimal("0.05")
    assert output is None
    assert len(scripted.calls) == 1  # the second turn never reached the model
    assert weather.calls == ["Paris"]
    assert session.iterations == 1
    assert session.state.value == "failed"
    assert "budget.exceeded" in [e.name for e in session.events]


DENY_WEATHER = PermissionPolicy(
    {"weather-bot": RolePermissions(allow=("*",), deny=("get_weather",))}
)


@pytest.mark.parametrize("how", HOWS)
def test_a_refused_tool_call_is_a_message_the_model_reads(how: str) -> None:
    mw, agent, weather, scripted, provider = setup(Stack([Permissions(DENY_WEATHER)]))
    session, output, error = execute(how, mw, agent, AgentMWModelProvider(provider))
    assert error is None
    assert output == "It is sunny"
    assert weather.calls == []
    (item,) = [i for i in scripted.calls[1].input if i.get("type") == "function_call_output"]
    assert item["call_id"] == "call-1"
    assert item["output"] == (
        "agentmw refused this tool call: PermissionDeniedError: denied by pattern 'get_weather'"
    )
    assert session.tool_calls == 0
    blocked = [e for e in session.events if e.name == "tool.blocked"]
    assert [(e.tool, e.data["kind"]) for e in blocked] == [("get_weather", "permission")]


@pytest.mark.parametrize("how", HOWS)
def test_on_refusal_raise_ends_the_run(how: str) -> None:
    mw, agent, weather, scripted, provider = setup(
        Stack([Permissions(DENY_WEATHER)]), on_refusal="raise"
    )
    session, _, error = execute(how, mw, agent, AgentMWModelProvider(provider))
    # The SDK wraps what a tool raises (agents/run_internal/tool_execution.py): the agentmw
    # error is the cause.
    assert isinstance(error, UserError)
    assert isinstance(error.__cause__, PermissionDeniedError)
    assert error.__cause__.tool == "get_weather"
    assert session.state.value == "failed"
    assert len(scripted.calls) == 1
    assert weather.calls == []


@pytest.mark.parametrize("how", HOWS)
def test_guardrails_see_tool_arguments_and_results(how: str) -> None:
    # Arguments: a blocked city never reaches the tool; the model reads why.
    stack = Stack([Guardrails([DenyPatterns([r"Atlantis"], stages=("input",))], kinds="tool")])
    mw, agent, weather, scripted, provider = setup(stack, model=script(city="Atlantis"))
    _, output, error = execute(how, mw, agent, AgentMWModelProvider(provider))
    assert error is None
    assert output == "It is sunny"
    assert weather.calls == []
    (item,) = [i for i in scripted.calls[1].input if i.get("type") == "function_call_output"]
    assert item["output"].startswith(
        "agentmw refused this tool call: GuardrailViolation: arguments blocked by DenyPatterns"
    )
    # Results: what the tool returns is redacted before the model reads it.
    mw, agent, weather, scripted, provider = setup(Stack([Guardrails([PIIRedactor()])]))
    weather.reply = "ask ops@example.com about {city}"
    _, _, error = execute(how, mw, agent, AgentMWModelProvider(provider))
    assert error is None
    (item,) = [i for i in scripted.calls[1].input if i.get("type") == "function_call_output"]
    assert item["output"] == "ask [REDACTED:email] about Paris"


@pytest.mark.parametrize("how", HOWS)
def test_guardrails_redact_the_model_output_the_run_returns(how: str) -> None:
    model = script(answer="write to me@example.com")
    mw, agent, _, _, provider = setup(
        Stack([Guardrails([PIIRedactor()], kinds="turn")]), model=model
    )
    session, output, error = execute(how, mw, agent, AgentMWModelProvider(provider))
    assert error is None
    assert output == "write to [REDACTED:email]"
    assert "guardrail.replaced" in [e.name for e in session.events]


@pytest.mark.parametrize("how", ["run_sync", "run"])
def test_checkpoint_replays_turns_and_tools_on_the_same_thread(how: str) -> None:
    saver = InMemorySaver()
    mw, agent, weather, _, provider = setup(Stack([Checkpoint(saver)]))
    first, output, error = execute(how, mw, agent, AgentMWModelProvider(provider), "t-1")
    assert error is None
    assert output == "It is sunny"
    # The resumed run replays every step: the model and the tool are not called again.
    empty = ScriptedModel([])
    resumed, again, error = execute(how, mw, agent, AgentMWModelProvider(Provider(empty)), "t-1")
    assert error is None
    assert again == "It is sunny"
    assert empty.calls == ()
    assert weather.calls == ["Paris"]
    replayed = [e for e in resumed.events if e.name == "checkpoint.replayed"]
    assert [e.data["checkpoint_step"] for e in replayed] == [1, 2, 3]
    assert resumed.usage == first.usage
    assert resumed.cost_usd == Decimal("0.29")


@pytest.mark.parametrize("how", HOWS)
def test_telemetry_spans_for_turns_and_the_tool(how: str) -> None:
    tracer_provider, exporter = spans()
    mw, agent, _, _, provider = setup(Stack([Telemetry(tracer_provider=tracer_provider)]))
    _, _, error = execute(how, mw, agent, AgentMWModelProvider(provider))
    assert error is None
    by_name: dict[str, list[Any]] = {}
    for span in exporter.get_finished_spans():
        by_name.setdefault(span.name, []).append(span)
    assert len(by_name[f"chat {MODEL}"]) == 2
    (tool,) = by_name["execute_tool get_weather"]
    assert tool.attributes["gen_ai.tool.call.id"] == "call-1"
    first = min(by_name[f"chat {MODEL}"], key=lambda s: s.start_time)
    assert first.attributes["gen_ai.usage.input_tokens"] == 100
    assert first.attributes["gen_ai.usage.output_tokens"] == 10
    assert first.attributes["gen_ai.request.model"] == MODEL


def test_an_agent_model_object_is_wrapped_directly() -> None:
    weather = Weather()
    scripted = script()
    mw = Agent("weather-bot")
    agent = SDKAgent(
        name="assistant",
        model=AgentMWModel(scripted, model=MODEL),
        tools=[wrap_tool(weather.tool)],
    )
    session, output, error = execute("run_sync", mw, agent)
    assert error is None
    assert output == "It is sunny"
    assert session.iterations == 2
    assert session.tool_calls == 1
    assert session.cost_usd == Decimal("0.29")


def test_outside_a_session_the_calls_run_on_the_fixed_stack() -> None:
    saw: list[str] = []
    stack = Stack([Guardrails([DenyPatterns([r"never-matches"])])])
    weather = Weather()
    agent = SDKAgent(
        name="assistant",
        model=MODEL,
        tools=wrap_tools([weather.tool], stack=stack),
    )
    provider = AgentMWModelProvider(Provider(script()), stack=stack)
    result = Runner.run_sync(
        agent, "weather?", run_config=RunConfig(model_provider=provider, tracing_disabled=True)
    )
    saw.append(result.final_output)
    assert saw == ["It is sunny"]
    assert weather.calls == ["Paris"]


def test_usage_from_sdk_reads_cache_and_reasoning_details() -> None:
    usage = usage_from_sdk(sdk_usage(500, 60, cached=300, written=50, reasoning=20))
    assert usage == Usage(
        input_tokens=500,
        output_tokens=60,
        cache_read_tokens=300,
        cache_write_tokens=50,
        reasoning_tokens=20,
    )
    assert usage_from_sdk(None) == Usage()
    output = ModelOutput([], sdk_usage(1, 2))
    assert output.to_model_response().usage.output_tokens == 2


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(TypeError, match="inner must be an agents ModelProvider, got str"):
        AgentMWModelProvider("gpt-4.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="inner must be an agents Model, got str"):
        AgentMWModel("gpt-4.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="stack must be a Stack or None, got list"):
        AgentMWModelProvider(Provider(script()), stack=[])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tool must be an agents FunctionTool, got str"):
        wrap_tool("get_weather")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_refusal"):
        wrap_tools([Weather().tool], on_refusal="ignore")


def test_without_the_sdk_the_import_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['agents'] = None\n"
        "try:\n"
        "    import agentmw.integrations.openai_agents\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'agentmw[openai-agents]'" in proc.stdout


def failing_tool(failure_error_function: Any) -> Any:
    def lookup(city: str) -> str:
        """Always fails."""
        raise RuntimeError("weather service down")

    if failure_error_function == "default":
        return function_tool(lookup)
    return function_tool(lookup, failure_error_function=failure_error_function)


def test_a_tools_own_failure_is_a_completed_call_by_default() -> None:
    # The SDK's invoker catches the tool's exception and returns its message to the model
    # (agents/tool.py): the stack around it sees a completed call.
    scripted = ScriptedModel(
        [
            ModelStep(output=[function_call("lookup", {"city": "Oslo"}, call_id="c9")]),
            ModelStep(output=[assistant_message("Sorry")]),
        ]
    )
    agent = SDKAgent(name="a", model=MODEL, tools=wrap_tools([failing_tool("default")]))
    session, output, error = execute(
        "run", Agent("weather-bot"), agent, AgentMWModelProvider(Provider(scripted))
    )
    assert error is None
    assert output == "Sorry"
    assert [e.name for e in session.events if e.tool == "lookup"] == [
        "tool.called",
        "tool.completed",
    ]


def test_without_a_failure_function_the_stack_sees_the_tools_exception() -> None:
    scripted = ScriptedModel(
        [ModelStep(output=[function_call("lookup", {"city": "Oslo"}, call_id="c9")])]
    )
    agent = SDKAgent(name="a", model=MODEL, tools=wrap_tools([failing_tool(None)]))
    session, _, error = execute(
        "run", Agent("weather-bot"), agent, AgentMWModelProvider(Provider(scripted))
    )
    assert isinstance(error, UserError)
    assert isinstance(error.__cause__, RuntimeError)
    failed = [e for e in session.events if e.name == "tool.failed"]
    assert [(e.tool, e.detail) for e in failed] == [("lookup", "RuntimeError")]
    assert session.tool_calls == 1


class Overloaded(Exception):
    status_code = 503


class Models(ModelProvider):
    """A provider with one scripted model per name."""

    def __init__(self, models: dict[str, Model]) -> None:
        self.models = models
        self.names: list[str | None] = []

    def get_model(self, model_name: str | None) -> Model:
        self.names.append(model_name)
        return self.models[str(model_name)]


@pytest.mark.parametrize("how", HOWS)
def test_fallback_switches_to_the_model_the_provider_resolves(how: str) -> None:
    primary = ScriptedModel([ModelStep.raise_error(Overloaded("busy"))])
    backup = ScriptedModel([ModelStep(output=[assistant_message("from backup")])])
    models = Models({MODEL: primary, "backup-model": backup})
    mw = Agent("weather-bot", stack=Stack([Fallback(["backup-model"])]))
    # The SDK's own model retries stay off (they would re-run the turn outside the stack).
    agent = SDKAgent(name="assistant", model=MODEL)
    session, output, error = execute(how, mw, agent, AgentMWModelProvider(models))
    assert error is None
    assert output == "from backup"
    assert models.names == [MODEL, "backup-model"]
    assert len(primary.calls) == 1
    assert len(backup.calls) == 1
    (switched,) = [e for e in session.events if e.name == "fallback.switched"]
    assert switched.data["from_model"] == MODEL
    assert switched.data["to_model"] == "backup-model"
    assert [e.model for e in session.events if e.name == "turn.completed"] == ["backup-model"]


@pytest.mark.parametrize("how", HOWS)
def test_a_redacted_argument_is_what_the_tool_receives(how: str) -> None:
    stack = Stack([Guardrails([PIIRedactor(stages=("input",))], kinds="tool")])
    mw, agent, weather, _, provider = setup(stack, model=script(city="ops@example.com"))
    session, _, error = execute(how, mw, agent, AgentMWModelProvider(provider))
    assert error is None
    assert weather.calls == ["[REDACTED:email]"]
    replaced = [e for e in session.events if e.name == "guardrail.replaced"]
    assert [(e.tool, e.data["stage"]) for e in replaced] == [("get_weather", "input")]
