"""`AgentMWMiddleware` inside a real `langchain.agents.create_agent` agent (scripted chat model)."""

from __future__ import annotations

import importlib
import sys
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("langchain.agents")

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool

from agentmw import Agent, ModelPricing, Stack, Usage
from agentmw.errors import (
    BudgetExceededError,
    CircuitOpenError,
    MaxIterationsExceededError,
    PermissionDeniedError,
    ReplayDivergedError,
)
from agentmw.guardrails import DenyPatterns, PIIRedactor
from agentmw.integrations.langchain import AgentMWMiddleware, usage_from_message
from agentmw.middleware import (
    Budget,
    Checkpoint,
    CircuitBreaker,
    Fallback,
    Guardrails,
    Limits,
    Permissions,
)
from agentmw.permissions import PermissionPolicy, RolePermissions
from agentmw.pricing import PricingTable
from agentmw.stores import InMemorySaver
from tests.errors import http

from .lc_models import ScriptedChatModel, reply

MODES = ["invoke", "ainvoke", "stream", "astream"]
PRICES = PricingTable(
    {
        "lc-test-model": ModelPricing(
            input_per_million=10,
            output_per_million=20,
            cache_read_per_million=1,
            cache_write_per_million=20,
        )
    }
)
RAN: list[tuple[str, Any]] = []


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    RAN.append(("lookup", key))
    return key.upper()


@tool
def shell(command: str) -> str:
    """Run a shell command."""
    RAN.append(("shell", command))
    return "ran"


@tool
def contact(name: str) -> str:
    """A person's contact line."""
    RAN.append(("contact", name))
    return f"{name}: alice@example.com"


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


def make(stack: Stack, replies: list[Any], **options: Any) -> tuple[Agent, Any, Any]:
    agent = Agent("researcher", stack=stack, pricing=PRICES)
    model = ScriptedChatModel(replies=replies)
    graph = create_agent(
        model, tools=[lookup, shell, contact], middleware=[AgentMWMiddleware(agent, **options)]
    )
    return agent, model, graph


async def run(graph: Any, mode: str, text: str = "go", thread: str | None = "t-1") -> Any:
    """Run the agent in `mode`; returns its final messages (streams: the streamed chunks)."""
    inputs = {"messages": [{"role": "user", "content": text}]}
    config = {"configurable": {"thread_id": thread}} if thread else None
    if mode == "invoke":
        return graph.invoke(inputs, config)["messages"]
    if mode == "ainvoke":
        return (await graph.ainvoke(inputs, config))["messages"]
    if mode == "stream":
        return [m for m, _ in graph.stream(inputs, config, stream_mode="messages")]
    return [m async for m, _ in graph.astream(inputs, config, stream_mode="messages")]


def last_session(agent: Agent) -> Any:
    finished = agent.registry.finished()
    assert finished, "the run closed no session"
    return finished[-1]


def tool_messages(model: ScriptedChatModel, request: int) -> list[ToolMessage]:
    return [m for m in model.requests[request] if isinstance(m, ToolMessage)]


def plain() -> Stack:
    return Stack.default(telemetry=False, retry=False, breaker=False)


@pytest.mark.parametrize("mode", MODES)
async def test_each_model_call_is_a_turn_and_each_tool_call_a_tool(mode: str) -> None:
    agent, model, graph = make(
        plain(),
        [
            reply("checking", tools=[("lookup", {"key": "a"})], input_tokens=1000,
                  output_tokens=200, cache_read=400, cache_creation=100, reasoning=50),
            reply("done", input_tokens=1000, output_tokens=100),
        ],
    )  # fmt: skip
    out = await run(graph, mode)
    session = last_session(agent)
    assert session.state.value == "completed"
    assert session.thread_id == "t-1"
    assert (session.iterations, session.tool_calls) == (2, 1)
    assert session.usage == Usage(
        input_tokens=2000,
        output_tokens=300,
        cache_read_tokens=400,
        cache_write_tokens=100,
        reasoning_tokens=50,
    )
    # 500 uncached input at $10/M, 400 cache reads at $1/M, 100 cache writes at $20/M, and
    # 200 output at $20/M, then 1000 input and 100 output.
    assert session.cost_usd == Decimal("0.0234")
    assert session.ledger.per_model()["lc-test-model"].calls == 2
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
    started = session.events[0]
    assert started.data == {"thread_id": "t-1"}
    assert [e.model for e in session.events if e.name == "turn.completed"] == ["lc-test-model"] * 2
    called = next(e for e in session.events if e.name == "tool.called")
    assert (called.tool, called.data) == ("lookup", {"tool_call_id": "call_1"})
    assert RAN == [("lookup", "a")]
    assert tool_messages(model, 1)[0].content == "A"
    if mode in ("invoke", "ainvoke"):
        assert [m.content for m in out if isinstance(m, AIMessage)] == ["checking", "done"]
    else:  # the model's text reached the consumer as chunks of the streamed calls
        assert "".join(m.content for m in out if m.type == "AIMessageChunk") == "checkingdone"


async def test_each_run_is_its_own_session_and_a_run_without_thread_has_none() -> None:
    agent, _, graph = make(plain(), [reply("one"), reply("two")])
    await run(graph, "invoke", thread=None)
    await run(graph, "ainvoke", thread="t-2")
    first, second = agent.registry.finished()[-2:]
    assert first.id != second.id
    assert (first.thread_id, second.thread_id) == (None, "t-2")
    assert (first.iterations, second.iterations) == (1, 1)
    assert agent.registry.active() == []


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_a_budget_stops_the_run_with_the_agentmw_error(mode: str) -> None:
    stack = Stack([Budget("0.001", enforce=True)])
    agent, model, graph = make(
        stack,
        [reply(tools=[("lookup", {"key": "a"})], input_tokens=100_000), reply("never")],
    )
    with pytest.raises(BudgetExceededError, match=r"budget of \$0.001 is spent"):
        await run(graph, mode)
    session = last_session(agent)
    assert session.state.value == "failed"
    assert (session.iterations, session.tool_calls) == (1, 1)
    assert len(model.requests) == 1  # the second model call was refused before it ran
    failed = [e for e in session.events if e.name == "turn.failed"]
    assert [e.detail for e in failed] == ["agentmw.errors.BudgetExceededError"]
    assert session.events[-1].name == "agent.failed"
    assert agent.registry.active() == []


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_an_open_circuit_ends_the_run(mode: str) -> None:
    breaker = CircuitBreaker(
        "tools", failure_threshold=1, recovery_timeout=60, counts=lambda _: True, kinds="tool"
    )
    agent, _, graph = make(
        Stack([breaker]),
        [reply(tools=[("lookup", {"key": "a"})]), reply("done")],
    )
    # Trip the breaker with one failing run of the tool outside the agent.
    with agent.session() as session, pytest.raises(RuntimeError):
        session.run_tool("lookup", _boom, {})
    with pytest.raises(CircuitOpenError, match="circuit 'tools' is open for 'lookup'"):
        await run(graph, mode)
    assert RAN == []
    assert last_session(agent).state.value == "failed"


def _boom(args: dict[str, Any]) -> str:
    raise RuntimeError("tool broke")


def denying(*tools: str) -> Stack:
    policy = PermissionPolicy({"researcher": RolePermissions(deny=tools)})
    return Stack([Permissions(policy)])


@pytest.mark.parametrize("mode", MODES)
async def test_a_refused_tool_becomes_a_tool_message_the_model_reads(mode: str) -> None:
    agent, model, graph = make(
        denying("shell"),
        [reply(tools=[("shell", {"command": "rm -rf /"}), ("lookup", {"key": "b"})]),
         reply("ok")],
    )  # fmt: skip
    await run(graph, mode)
    assert RAN == [("lookup", "b")]
    refused, looked = sorted(tool_messages(model, 1), key=lambda m: m.tool_call_id)
    assert refused.tool_call_id == "call_1"
    assert refused.status == "error"
    assert refused.content == (
        "agentmw refused this tool call: PermissionDeniedError: denied by pattern 'shell'"
    )
    assert "rm -rf" not in refused.content
    assert (looked.content, looked.status) == ("B", "success")
    session = last_session(agent)
    assert session.state.value == "completed"
    blocked = [e for e in session.events if e.name == "tool.blocked"]
    assert [(e.tool, e.data["kind"]) for e in blocked] == [("shell", "permission")]
    failed = [(e.tool, e.detail) for e in session.events if e.name == "tool.failed"]
    assert failed == [("shell", "agentmw.errors.PermissionDeniedError")]
    assert session.tool_calls == 1  # a refusal is no tool call


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_on_refusal_raise_ends_the_run(mode: str) -> None:
    agent, model, graph = make(
        denying("shell"), [reply(tools=[("shell", {"command": "ls"})]), reply("x")],
        on_refusal="raise",
    )  # fmt: skip
    with pytest.raises(PermissionDeniedError, match="may not call tool 'shell'"):
        await run(graph, mode)
    assert RAN == []
    assert len(model.requests) == 1
    session = last_session(agent)
    assert session.state.value == "failed"
    assert session.events[-1].detail == "agentmw.errors.PermissionDeniedError"


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_guardrails_see_tool_arguments_and_results(mode: str) -> None:
    guards = Guardrails(
        [DenyPatterns([r"sk-[a-z0-9]{8}"], stages=("input",)), PIIRedactor()], kinds="tool"
    )
    agent, model, graph = make(
        Stack([guards]),
        [reply(tools=[("lookup", {"key": "sk-abcdef12"}), ("contact", {"name": "Al"})]),
         reply("ok")],
    )  # fmt: skip
    await run(graph, mode)
    assert RAN == [("contact", "Al")]  # the blocked call never ran
    blocked, redacted = sorted(tool_messages(model, 1), key=lambda m: m.tool_call_id)
    assert blocked.status == "error"
    assert blocked.content == (
        "agentmw refused this tool call: GuardrailViolation: arguments blocked by "
        "DenyPatterns (pattern 0 matched)"
    )
    assert "sk-abcdef12" not in blocked.content
    assert redacted.content == "Al: [REDACTED:email]"
    assert last_session(agent).state.value == "completed"


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_a_tool_limit_refuses_the_call_past_it(mode: str) -> None:
    agent, model, graph = make(
        Stack([Limits(max_tool_calls=1)]),
        [reply(tools=[("lookup", {"key": "a"})]),
         reply(tools=[("lookup", {"key": "b"})], first_id=2), reply("ok")],
    )  # fmt: skip
    await run(graph, mode)
    assert RAN == [("lookup", "a")]
    (refused,) = tool_messages(model, 2)[1:]
    assert refused.content == (
        "agentmw refused this tool call: LimitExceededError: max_tool_calls reached (limit 1)"
    )
    assert last_session(agent).tool_calls == 1


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_output_guardrails_redact_the_model_reply(mode: str) -> None:
    agent, _, graph = make(
        Stack([Guardrails([PIIRedactor()], kinds="turn")]),
        [reply("write to bob@example.com")],
    )
    out = await run(graph, mode)
    assert out[-1].content == "write to [REDACTED:email]"
    assert last_session(agent).iterations == 1


@pytest.mark.parametrize(
    ("mode", "resume"), [("invoke", "invoke"), ("ainvoke", "ainvoke"), ("invoke", "ainvoke")]
)
async def test_a_checkpoint_replays_the_thread_without_calling_model_or_tools(
    mode: str, resume: str
) -> None:
    saver = InMemorySaver()
    stack = Stack([Checkpoint(saver)])
    script = [reply("looking", tools=[("lookup", {"key": "a"})]), reply("done")]
    agent, _, graph = make(stack, list(script))
    first = await run(graph, mode, thread="durable-1")
    assert RAN == [("lookup", "a")]
    RAN.clear()
    # The same thread again, with a model that has nothing to say: every step replays.
    again = AgentMWMiddleware(agent)
    empty = ScriptedChatModel(replies=[])
    graph2 = create_agent(empty, tools=[lookup, shell, contact], middleware=[again])
    second = await run(graph2, resume, thread="durable-1")
    assert RAN == []
    assert empty.requests == []
    assert [_shape(m) for m in second] == [_shape(m) for m in first]
    session = last_session(agent)
    assert session.thread_id == "durable-1"
    replayed = [
        e.data["checkpoint_step"] for e in session.events if e.name == "checkpoint.replayed"
    ]
    assert replayed == [1, 2, 3]
    assert session.usage == Usage(input_tokens=200, output_tokens=40)


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_fallback_switches_to_a_chat_model_named_in_models(mode: str) -> None:
    backup = ScriptedChatModel(replies=[reply("from backup")], model_name="lc-backup")
    agent, model, graph = make(
        Stack([Fallback(["lc-backup"])]), [http(503)], models={"lc-backup": backup}
    )
    out = await run(graph, mode)
    assert out[-1].content == "from backup"
    assert (len(model.requests), len(backup.requests)) == (1, 1)
    session = last_session(agent)
    assert [e.model for e in session.events if e.name == "turn.completed"] == ["lc-backup"]
    assert session.ledger.per_model()["lc-backup"].calls == 1


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_a_switch_to_an_unknown_model_says_so(mode: str) -> None:
    agent, _, graph = make(Stack([Fallback(["lc-nowhere"])]), [http(503)])
    with pytest.raises(ValueError, match="'lc-nowhere', which is not in AgentMWMiddleware"):
        await run(graph, mode)
    assert last_session(agent).state.value == "failed"


async def test_a_conversation_continuing_its_thread_needs_on_divergence_rerun() -> None:
    from langgraph.checkpoint.memory import InMemorySaver as GraphSaver

    results = {}
    for on_divergence in ("raise", "rerun"):
        stack = Stack([Checkpoint(InMemorySaver(), on_divergence=on_divergence)])
        agent = Agent("researcher", stack=stack, pricing=PRICES)
        model = ScriptedChatModel(
            replies=[reply(tools=[("lookup", {"key": "a"})]), reply("one"), reply("two")]
        )
        graph = create_agent(
            model, tools=[lookup], middleware=[AgentMWMiddleware(agent)],
            checkpointer=GraphSaver(),
        )  # fmt: skip
        await run(graph, "ainvoke", "first", thread="chat")
        try:
            out = await run(graph, "ainvoke", "second", thread="chat")
            results[on_divergence] = [m.content for m in out]
        except ReplayDivergedError as exc:
            results[on_divergence] = [type(exc).__name__]
    # The second message extends the thread's history: its first turn matches no record.
    assert results == {
        "raise": ["ReplayDivergedError"],
        "rerun": ["first", "", "A", "one", "second", "two"],
    }


def _shape(message: BaseMessage) -> tuple[Any, ...]:
    calls = [(c["name"], c["args"], c["id"]) for c in getattr(message, "tool_calls", [])]
    return (message.type, message.content, calls, getattr(message, "tool_call_id", None))


def test_usage_from_message_maps_the_token_details() -> None:
    message = reply(input_tokens=7, output_tokens=5, cache_read=3, cache_creation=2, reasoning=1)
    assert usage_from_message(message) == Usage(
        input_tokens=7, output_tokens=5, cache_read_tokens=3, cache_write_tokens=2,
        reasoning_tokens=1,
    )  # fmt: skip
    assert usage_from_message(AIMessage(content="x")) == Usage()


def test_bad_arguments_name_the_argument() -> None:
    agent = Agent("a")
    with pytest.raises(TypeError, match="agent must be an agentmw Agent"):
        AgentMWMiddleware("agent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_refusal"):
        AgentMWMiddleware(agent, on_refusal="ignore")
    with pytest.raises(TypeError, match=r"models\['x'\] must be a langchain chat model"):
        AgentMWMiddleware(agent, models={"x": object()})  # type: ignore[dict-item]
    assert AgentMWMiddleware(agent, name="mw2").name == "mw2"


def test_without_langchain_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "agentmw.integrations.langchain", raising=False)
    for name in list(sys.modules):
        if name == "langchain" or name.startswith("langchain."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "langchain", None)
    with pytest.raises(ImportError, match=r"pip install 'agentmw\[langchain\]'"):
        importlib.import_module("agentmw.integrations.langchain")


@pytest.mark.parametrize("mode", ["invoke", "astream"])
async def test_telemetry_spans_nest_under_the_run_session(mode: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentmw.middleware import Telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _agent, _, graph = make(
        Stack([Telemetry(tracer_provider=provider)]),
        [reply(tools=[("lookup", {"key": "a"})], cache_read=30, reasoning=4), reply("done")],
    )
    await run(graph, mode, thread="span-thread")
    finished = list(exporter.get_finished_spans())
    assert sorted(s.name for s in finished) == [
        "chat lc-test-model",
        "chat lc-test-model",
        "execute_tool lookup",
        "invoke_agent researcher",
    ]
    (session,) = [s for s in finished if s.name == "invoke_agent researcher"]
    assert dict(session.attributes or {})["gen_ai.conversation.id"] == "span-thread"
    for span in finished:
        if span is not session:
            assert span.parent is not None
            assert span.parent.span_id == session.context.span_id
    (tool_span,) = [s for s in finished if s.name == "execute_tool lookup"]
    assert dict(tool_span.attributes or {})["gen_ai.tool.call.id"] == "call_1"
    first = dict(next(s for s in finished if s.name.startswith("chat")).attributes or {})
    assert first["gen_ai.usage.input_tokens"] == 100
    assert first["gen_ai.usage.cache_read.input_tokens"] == 30
    assert first["gen_ai.usage.reasoning.output_tokens"] == 4


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_an_interrupted_run_resumes_in_the_same_session(mode: str) -> None:
    from langchain.agents.middleware import HumanInTheLoopMiddleware
    from langgraph.checkpoint.memory import InMemorySaver as GraphSaver
    from langgraph.types import Command

    agent = Agent("researcher", stack=plain(), pricing=PRICES)
    model = ScriptedChatModel(replies=[reply(tools=[("lookup", {"key": "a"})]), reply("done")])
    graph: Any = create_agent(
        model, tools=[lookup], checkpointer=GraphSaver(),
        middleware=[AgentMWMiddleware(agent), HumanInTheLoopMiddleware({"lookup": True})],
    )  # fmt: skip
    config: Any = {"configurable": {"thread_id": "review-1"}}
    start = {"messages": [{"role": "user", "content": "go"}]}
    resume: Any = Command(resume={"decisions": [{"type": "approve"}]})
    if mode == "invoke":
        paused = graph.invoke(start, config)
        (waiting,) = agent.registry.active()
        paused_state = waiting.state.value
        out = graph.invoke(resume, config)
    else:
        paused = await graph.ainvoke(start, config)
        (waiting,) = agent.registry.active()
        paused_state = waiting.state.value
        out = await graph.ainvoke(resume, config)
    assert "__interrupt__" in paused
    assert paused_state == "running"
    assert RAN == [("lookup", "a")]
    assert out["messages"][-1].content == "done"
    assert agent.registry.active() == []
    assert last_session(agent) is waiting
    assert (waiting.state.value, waiting.iterations, waiting.tool_calls) == ("completed", 2, 1)


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_a_turn_limit_ends_the_run(mode: str) -> None:
    agent, model, graph = make(
        Stack([Limits(max_turns=1)]), [reply(tools=[("lookup", {"key": "a"})]), reply("no")]
    )
    with pytest.raises(MaxIterationsExceededError, match="max_turns reached: 2 > 1"):
        await run(graph, mode)
    assert len(model.requests) == 1
    assert last_session(agent).state.value == "failed"


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_streamed_tokens_pass_before_the_output_guard_sees_the_reply(mode: str) -> None:
    # The documented limit: LangGraph streams the tokens from a callback inside the model call;
    # the guard redacts the finished reply, which is what enters the state.
    agent, _, graph = make(
        Stack([Guardrails([PIIRedactor()], kinds="turn")]), [reply("mail bob@example.com")]
    )
    inputs = {"messages": [{"role": "user", "content": "go"}]}
    modes: Any = ["messages", "values"]
    if mode == "stream":
        parts = list(graph.stream(inputs, stream_mode=modes))
    else:
        parts = [p async for p in graph.astream(inputs, stream_mode=modes)]
    streamed = "".join(data[0].content for kind, data in parts if kind == "messages")
    assert streamed == "mail bob@example.com"
    final = [data for kind, data in parts if kind == "values"][-1]
    assert final["messages"][-1].content == "mail [REDACTED:email]"
    session = last_session(agent)
    replaced = [e for e in session.events if e.name == "guardrail.replaced"]
    assert [(e.data["stage"], e.data["guard"]) for e in replaced] == [("output", "PIIRedactor")]


def test_which_refusals_the_model_reads() -> None:
    from langgraph.prebuilt.tool_node import ToolCallRequest

    from agentmw.errors import LimitExceededError, PolicyViolationError, RateLimitedError

    call = {"name": "shell", "args": {}, "id": "call_9", "type": "tool_call"}
    request = ToolCallRequest(tool_call=call, tool=None, state={}, runtime=None)  # type: ignore[arg-type]
    middleware = AgentMWMiddleware(Agent("a"))
    denied = middleware._refused(request, PolicyViolationError("no-shell", "not here"))
    assert denied is not None
    assert denied.content == (
        "agentmw refused this tool call: PolicyViolationError: policy rule 'no-shell' (deny): "
        "not here"
    )
    assert (denied.tool_call_id, denied.name, denied.status) == ("call_9", "shell", "error")
    limited = middleware._refused(request, LimitExceededError("max_tool_calls", 3, 2))
    assert limited is not None
    assert str(limited.content).endswith("LimitExceededError: max_tool_calls reached (limit 2)")
    assert middleware._refused(request, PolicyViolationError("stop", "done", "abort")) is None
    assert middleware._refused(request, RateLimitedError(1.0)) is None
    from agentmw.errors import ApprovalPendingError

    pending = ApprovalPendingError("t", 2, "tool", "shell", "ask", "May I?")
    assert middleware._refused(request, pending) is None  # a pending approval ends the run
    raising = AgentMWMiddleware(Agent("a"), on_refusal="raise")
    assert raising._refused(request, PolicyViolationError("no-shell", "not here")) is None


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
@pytest.mark.parametrize("decision", ["reject", "edit"])
async def test_a_durable_approval_ends_the_run_and_its_decision_resumes_it(
    mode: str, decision: str
) -> None:
    from agentmw.errors import ApprovalPendingError
    from agentmw.middleware import Policy
    from agentmw.policy import PolicyEngine, Rule, fact, require_approval

    saver = InMemorySaver()
    rule = Rule("ask-shell", fact("tool") == "shell", require_approval("Run a command?"))
    stack = Stack([Checkpoint(saver), Policy(PolicyEngine([rule]))])
    agent, _, graph = make(stack, [reply("running", tools=[("shell", {"command": "ls"})])])
    with pytest.raises(ApprovalPendingError) as info:
        await run(graph, mode, thread="lc-approval")
    assert (info.value.step, info.value.name) == (2, "shell")
    assert RAN == []
    (pending,) = saver.list_approvals()
    assert pending.arguments == {"args": {"command": "ls"}}  # the tool call's arguments
    if decision == "reject":
        saver.resolve_approval("lc-approval", 2, "reject", note="not on prod")
    else:
        saver.resolve_approval("lc-approval", 2, "edit", arguments={"args": {"command": "pwd"}})
    # The same thread again: the first turn replays, the tool call meets the decision.
    later = ScriptedChatModel(replies=[reply("ok")])
    graph2 = create_agent(
        later, tools=[lookup, shell, contact], middleware=[AgentMWMiddleware(agent)]
    )
    await run(graph2, mode, thread="lc-approval")
    assert len(later.requests) == 1  # only the turn after the tool ran live
    (message,) = [m for m in later.requests[0] if isinstance(m, ToolMessage)]
    if decision == "reject":
        assert RAN == []
        assert message.status == "error"
        assert message.content == (
            "agentmw refused this tool call: ApprovalRejectedError: rejected by its reviewer"
            " (policy rule 'ask-shell'); reviewer's note: not on prod"
        )
    else:
        assert RAN == [("shell", "pwd")]
        assert (message.content, message.status) == ("ran", "success")
    assert last_session(agent).state.value == "completed"
