"""Telemetry: GenAI spans and metrics, checked with the SDK's in-memory exporter and reader."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

import agentmw
from agentmw import Agent, Middleware, Usage
from agentmw.middleware import OpenTelemetryEventSink, Telemetry, Timeout
from agentmw.middleware.telemetry import semconv as _semconv
from agentmw.testing import Reply, ScriptedModel

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


class StartAttributes(SpanProcessor):
    """Remembers each span's attributes as they were when it started."""

    def __init__(self) -> None:
        self.at_start: dict[str, dict[str, Any]] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.at_start[span.name] = dict(span.attributes or {})


class Otel(SimpleNamespace):
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    starts: StartAttributes
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        (found,) = [s for s in self.spans() if s.name == name]
        return found

    def layer(self, **options: Any) -> Telemetry:
        return Telemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def metrics(self) -> dict[str, Any]:
        data = self.reader.get_metrics_data()
        out: dict[str, Any] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out[metric.name] = metric
        return out


@pytest.fixture
def otel() -> Otel:
    exporter = InMemorySpanExporter()
    starts = StartAttributes()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(starts)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return Otel(
        exporter=exporter,
        reader=reader,
        starts=starts,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )


class Emits(Middleware):
    """Stands in for Retry/CircuitBreaker/Budget (built elsewhere): emits events, sets cost."""

    def __init__(self, *names: str, cost: str | None = None) -> None:
        super().__init__()
        self.names = names
        self.cost = cost

    def before(self, call: agentmw.Call) -> None:
        for name in self.names:
            call.emit(name, attempt=call.attempt, scenario="timeout", delay=0.5)

    def after(self, call: agentmw.Call, result: Any) -> Any:
        if self.cost is not None:
            call.cost_usd = Decimal(self.cost)
        return result


def lookup(x: int) -> dict[str, int]:
    return {"value": x * 2}


async def alookup(x: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"value": x * 2}


def run(mode: str, agent: Agent, model: ScriptedModel, *, tool: bool = True, **kw: Any) -> None:
    """One session: a turn (and a tool call) on the sync or the async path."""
    if mode == "sync":
        with agent.session(**kw) as session:
            session.run_turn(model, "hello there", model=model.model)
            if tool:
                session.run_tool("lookup", lookup, 21)
        return

    async def main() -> None:
        async with agent.session(**kw) as session:
            await session.arun_turn(model.acall, "hello there", model=model.model)
            if tool:
                await session.arun_tool("lookup", alookup, 21)

    asyncio.run(main())


def reply(**kw: Any) -> Reply:
    usage = Usage(input_tokens=120, output_tokens=30, cache_read_tokens=100, reasoning_tokens=7)
    return Reply("hi!", usage, model="gpt-4o-2024-08-06", **kw)


# -- spans -------------------------------------------------------------------------------------
def test_session_turn_and_tool_spans(otel: Otel, mode: str) -> None:
    agent = Agent("writer", stack=[otel.layer()])
    run(mode, agent, ScriptedModel([reply()], model="gpt-4o"), thread_id="thread-7")
    names = [s.name for s in otel.spans()]
    assert names == ["chat gpt-4o", "execute_tool lookup", "invoke_agent writer"]
    session, turn, tool = (
        otel.span("invoke_agent writer"),
        otel.span("chat gpt-4o"),
        otel.span("execute_tool lookup"),
    )
    assert (session.kind, turn.kind, tool.kind) == (
        SpanKind.INTERNAL,
        SpanKind.CLIENT,
        SpanKind.INTERNAL,
    )
    sid = dict(session.attributes or {})[_semconv.GEN_AI_AGENT_ID]
    assert dict(session.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "writer",
        "gen_ai.agent.id": sid,
        "gen_ai.conversation.id": "thread-7",
    }
    assert otel.starts.at_start["chat gpt-4o"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
    }
    assert dict(turn.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 100,
        "gen_ai.usage.reasoning.output_tokens": 7,
    }
    assert dict(tool.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "lookup",
        "gen_ai.tool.type": "function",
    }
    for span in otel.spans():
        assert span.status.status_code is StatusCode.UNSET
        assert span.parent is None or span.parent.span_id == session.context.span_id
        assert span.context.trace_id == session.context.trace_id
        assert not any(key == "gen_ai.system" for key in span.attributes or {})
    assert turn.parent is not None
    assert tool.parent is not None


def test_response_attributes_are_duck_typed(otel: Otel) -> None:
    openai_like = SimpleNamespace(
        id="chatcmpl-1",
        model="gpt-4o-mini-2024",
        choices=[SimpleNamespace(finish_reason="stop"), SimpleNamespace(finish_reason="length")],
        usage=SimpleNamespace(prompt_tokens=5, completion_tokens=3),
    )
    anthropic_like = SimpleNamespace(
        id="msg_1",
        model="claude-sonnet-4",
        stop_reason="end_turn",
        usage=SimpleNamespace(input_tokens=4, output_tokens=2),
    )
    agent = Agent("writer", stack=[otel.layer()])
    with agent.session() as session:
        session.run_turn(lambda: openai_like, model="gpt-4o-mini")
        session.run_turn(lambda: anthropic_like, model="claude-sonnet-4")
    first, second = (
        dict(otel.span(n).attributes or {}) for n in ("chat gpt-4o-mini", "chat claude-sonnet-4")
    )
    assert first["gen_ai.response.id"] == "chatcmpl-1"
    assert first["gen_ai.response.finish_reasons"] == ("stop", "length")
    assert first["gen_ai.usage.input_tokens"] == 5
    assert second["gen_ai.provider.name"] == "anthropic"
    assert second["gen_ai.response.id"] == "msg_1"
    assert second["gen_ai.response.finish_reasons"] == ("end_turn",)


def test_provider_name_option_and_meta(otel: Otel) -> None:
    class SetsProvider(Middleware):
        def before(self, call: agentmw.Call) -> None:
            call.provider = "azure.ai.openai"

    model = ScriptedModel(["a", "b"], model="my-deployment")
    with Agent("a", stack=[otel.layer()]).session() as s:
        s.run_turn(model, "x", model="my-deployment")
    with Agent("b", stack=[otel.layer(provider_name="aws.bedrock")]).session() as s:
        s.run_turn(model, "x", model="my-deployment")
    spans = [dict(s.attributes or {}) for s in otel.spans() if s.name.startswith("chat")]
    assert [a["gen_ai.provider.name"] for a in spans] == ["unknown", "aws.bedrock"]
    with Agent("c", stack=[otel.layer(), SetsProvider()]).session() as s:
        s.run_turn(ScriptedModel(["c"]), "x", model="m")
    # Set by a layer inside Telemetry, so only known once the span started: the start wins.
    last = next(s for s in otel.spans() if s.name == "chat m")
    assert dict(last.attributes or {})["gen_ai.provider.name"] == "unknown"


def test_cost_attribute_and_counter(otel: Otel) -> None:
    agent = Agent("writer", stack=[otel.layer(), Emits(cost="0.0125")])
    run("sync", agent, ScriptedModel(["hi"], model="gpt-4o"), tool=False)
    assert dict(otel.span("chat gpt-4o").attributes or {})["agentmw.cost_usd"] == 0.0125
    cost = otel.metrics()["agentmw.cost"]
    assert cost.unit == "USD"
    (point,) = cost.data.data_points
    assert point.value == pytest.approx(0.0125)
    assert dict(point.attributes)["gen_ai.request.model"] == "gpt-4o"


def test_no_cost_attribute_when_unknown(otel: Otel) -> None:
    run("sync", Agent("w", stack=[otel.layer()]), ScriptedModel(["hi"], model="gpt-4o"), tool=False)
    assert "agentmw.cost_usd" not in dict(otel.span("chat gpt-4o").attributes or {})
    assert "agentmw.cost" not in otel.metrics()


# -- parent and child across threads and tasks --------------------------------------------------
def test_worker_thread_of_timeout_keeps_parents(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("user-code")
    threads: list[str] = []

    def model_call(prompt: str) -> Reply:
        threads.append(threading.current_thread().name)
        with tracer.start_as_current_span("http POST"):
            return Reply("ok", Usage(1, 1))

    agent = Agent("writer", stack=[otel.layer(), Timeout(5)])
    with agent.session() as session:
        session.run_turn(model_call, "x", model="gpt-4o")
    assert threads[0].startswith("agentmw-worker")
    session_span, turn, inner = (
        otel.span("invoke_agent writer"),
        otel.span("chat gpt-4o"),
        otel.span("http POST"),
    )
    assert turn.parent is not None
    assert turn.parent.span_id == session_span.context.span_id
    assert inner.parent is not None
    assert inner.parent.span_id == turn.context.span_id


def test_calls_from_plain_threads_and_tasks_are_children(otel: Otel, mode: str) -> None:
    agent = Agent("writer", stack=[otel.layer()])
    model = ScriptedModel(["r"], repeat_last=True, model="gpt-4o")
    if mode == "sync":
        with agent.session() as session, ThreadPoolExecutor(4) as pool:
            # pool threads do not carry our context: the explicit parent must
            list(pool.map(lambda i: session.run_turn(model, str(i), model="gpt-4o"), range(8)))
    else:

        async def main() -> None:
            async with agent.session() as session:
                await asyncio.gather(
                    *(session.arun_turn(model.acall, str(i), model="gpt-4o") for i in range(8))
                )

        asyncio.run(main())
    root = otel.span("invoke_agent writer")
    turns = [s for s in otel.spans() if s.name == "chat gpt-4o"]
    assert len(turns) == 8
    assert {t.parent.span_id for t in turns if t.parent} == {root.context.span_id}


def test_tool_inside_a_turn_is_a_child_of_the_turn(otel: Otel, mode: str) -> None:
    agent = Agent("writer", stack=[otel.layer()])
    if mode == "sync":

        def turn() -> Reply:
            session = agentmw.current_session()
            assert session is not None
            session.run_tool("lookup", lookup, 1)
            return Reply("ok")

        with agent.session() as s:
            s.run_turn(turn, model="m")
    else:

        async def aturn() -> Reply:
            session = agentmw.current_session()
            assert session is not None
            await session.arun_tool("lookup", alookup, 1)
            return Reply("ok")

        async def main() -> None:
            async with agent.session() as s:
                await s.arun_turn(aturn, model="m")

        asyncio.run(main())
    tool, chat = otel.span("execute_tool lookup"), otel.span("chat m")
    assert tool.parent is not None
    assert tool.parent.span_id == chat.context.span_id


def test_handoff_links_to_the_source_session(otel: Otel) -> None:
    layer = otel.layer()
    writer, editor = Agent("writer", stack=[layer]), Agent("editor", stack=[layer])
    with writer.session() as ws:
        handoff = ws.handoff_to(editor, reason="review")
    with editor.session(handoff=handoff):
        pass
    source, target = otel.span("invoke_agent writer"), otel.span("invoke_agent editor")
    (link,) = target.links
    assert link.context.span_id == source.context.span_id
    assert not source.links


# -- events, errors, content --------------------------------------------------------------------
def test_layer_events_become_turn_span_events_and_counters(otel: Otel, mode: str) -> None:
    inner = Emits("retry.scheduled", "breaker.opened", "rate_limit.waited", "fallback.switched")
    agent = Agent("writer", stack=[otel.layer(), inner])
    run(mode, agent, ScriptedModel(["hi"], model="gpt-4o"), tool=False)
    turn = otel.span("chat gpt-4o")
    assert [e.name for e in turn.events] == [
        "retry.scheduled",
        "breaker.opened",
        "rate_limit.waited",
        "fallback.switched",
    ]
    retry = turn.events[0]
    assert dict(retry.attributes or {}) == {
        "agentmw.step": 1,
        "agentmw.attempt": 1,
        "agentmw.scenario": "timeout",
        "agentmw.delay": 0.5,
    }
    metrics = otel.metrics()
    (retries,) = metrics["agentmw.retries"].data.data_points
    assert retries.value == 1
    assert dict(retries.attributes)["gen_ai.operation.name"] == "chat"
    (transition,) = metrics["agentmw.breaker.transitions"].data.data_points
    assert transition.value == 1
    assert dict(transition.attributes)["agentmw.breaker.state"] == "opened"
    assert not otel.span("invoke_agent writer").events  # the layer puts them on the turn


def test_error_spans_carry_the_type_never_the_message(otel: Otel, mode: str) -> None:
    class Boom(Exception):
        pass

    agent = Agent("writer", stack=[otel.layer()])
    model = ScriptedModel([Boom("secret prompt text")], model="gpt-4o")
    with pytest.raises(Boom):
        run(mode, agent, model, tool=False)
    turn, session = otel.span("chat gpt-4o"), otel.span("invoke_agent writer")
    qualified = f"{Boom.__module__}.{Boom.__qualname__}"
    for span in (turn, session):
        assert span.status.status_code is StatusCode.ERROR
        assert not span.status.description
        assert dict(span.attributes or {})["error.type"] == qualified
        assert not span.events
        assert "secret" not in str(span.to_json())
    (point,) = otel.metrics()["gen_ai.client.operation.duration"].data.data_points
    assert dict(point.attributes)["error.type"] == qualified


def test_content_is_off_by_default(otel: Otel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_semconv.ENV_CAPTURE_CONTENT, raising=False)
    run("sync", Agent("writer", stack=[otel.layer()]), ScriptedModel(["the answer"]))
    text = "".join(str(s.to_json()) for s in otel.spans())
    assert "hello there" not in text
    assert "the answer" not in text
    assert "gen_ai.input.messages" not in text
    assert "gen_ai.tool.call.arguments" not in text


def test_content_on_with_the_variable(
    otel: Otel, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv(_semconv.ENV_CAPTURE_CONTENT, "true")
    run(mode, Agent("writer", stack=[otel.layer()]), ScriptedModel(["the answer"], model="m"))
    turn, tool = otel.span("chat m"), otel.span("execute_tool lookup")
    assert otel.starts.at_start["chat m"]["gen_ai.input.messages"] == (
        '[{"role": "user", "parts": [{"type": "text", "content": "hello there"}]}]'
    )
    assert dict(turn.attributes or {})["gen_ai.output.messages"] == (
        '[{"role": "assistant", "parts": [{"type": "text", "content": "the answer"}],'
        ' "finish_reason": "stop"}]'
    )
    assert dict(tool.attributes or {})["gen_ai.tool.call.arguments"] == '{"args": [21]}'
    assert dict(tool.attributes or {})["gen_ai.tool.call.result"] == '{"value": 42}'
    assert Telemetry(capture_content=False).capture_content is False


# -- metrics ------------------------------------------------------------------------------------
def test_metric_names_units_buckets_and_points(otel: Otel, mode: str) -> None:
    agent = Agent("writer", stack=[otel.layer()])
    model = ScriptedModel([Reply("a", Usage(10, 2)), Reply("b", Usage(3000, 5))], model="gpt-4o")
    if mode == "sync":
        with agent.session() as s:
            s.run_turn(model, "x", model="gpt-4o")
            s.run_turn(model, "y", model="gpt-4o")
    else:

        async def main() -> None:
            async with agent.session() as s:
                await s.arun_turn(model.acall, "x", model="gpt-4o")
                await s.arun_turn(model.acall, "y", model="gpt-4o")

        asyncio.run(main())
    metrics = otel.metrics()
    tokens, duration = (
        metrics["gen_ai.client.token.usage"],
        metrics["gen_ai.client.operation.duration"],
    )
    assert (tokens.unit, duration.unit) == ("{token}", "s")
    by_type = {dict(p.attributes)["gen_ai.token.type"]: p for p in tokens.data.data_points}
    assert set(by_type) == {"input", "output"}
    assert (by_type["input"].count, by_type["input"].sum) == (2, 3010)
    assert (by_type["output"].count, by_type["output"].sum) == (2, 7)
    assert tuple(by_type["input"].explicit_bounds) == _semconv.METRIC_TOKEN_USAGE_BUCKETS
    assert tuple(by_type["input"].explicit_bounds) == (
        1,
        4,
        16,
        64,
        256,
        1024,
        4096,
        16384,
        65536,
        262144,
        1048576,
        4194304,
        16777216,
        67108864,
    )
    assert dict(by_type["input"].attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.token.type": "input",
    }
    (point,) = duration.data.data_points
    assert point.count == 2
    assert tuple(point.explicit_bounds) == (
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.28,
        2.56,
        5.12,
        10.24,
        20.48,
        40.96,
        81.92,
    )
    assert "error.type" not in dict(point.attributes)


# -- streams ------------------------------------------------------------------------------------
def test_stream_span_ends_when_the_consumer_stops_early(otel: Otel, mode: str) -> None:
    model = ScriptedModel(["abcdefghijklmnopqrstuvwxyz"], chunk_size=4, model="gpt-4o")
    agent = Agent("writer", stack=[otel.layer()])
    if mode == "sync":

        @agentmw.agent_turn(model="gpt-4o")
        def stream(prompt: str) -> Any:
            yield from model.stream(prompt)

        with agent.session():
            for _chunk in stream("go"):
                break
    else:

        @agentmw.agent_turn(model="gpt-4o")
        async def astream(prompt: str) -> Any:
            async for chunk in model.astream(prompt):
                yield chunk

        async def main() -> None:
            async with agent.session():
                agen = astream("go")
                async for _chunk in agen:
                    break
                await agen.aclose()

        asyncio.run(main())
    turn = otel.span("chat gpt-4o")
    assert turn.end_time is not None
    assert turn.status.status_code is StatusCode.UNSET


def test_full_stream_records_usage(otel: Otel, mode: str) -> None:
    model = ScriptedModel([Reply("abcdefgh", Usage(7, 3))], chunk_size=3, model="gpt-4o")
    agent = Agent("writer", stack=[otel.layer(), Timeout(5)])
    got: list[str] = []
    if mode == "sync":

        @agentmw.agent_turn(model="gpt-4o")
        def stream(prompt: str) -> Any:
            yield from model.stream(prompt)

        with agent.session():
            got = [c.text for c in stream("go")]
    else:

        @agentmw.agent_turn(model="gpt-4o")
        async def astream(prompt: str) -> Any:
            async for chunk in model.astream(prompt):
                yield chunk

        async def main() -> list[str]:
            async with agent.session():
                return [c.text async for c in astream("go")]

        got = asyncio.run(main())
    assert "".join(got) == "abcdefgh"
    attrs = dict(otel.span("chat gpt-4o").attributes or {})
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (7, 3)
    root = otel.span("invoke_agent writer")
    assert otel.span("chat gpt-4o").parent.span_id == root.context.span_id  # type: ignore[union-attr]


# -- no-op fast path, sink, options ---------------------------------------------------------------
def test_noop_providers_take_the_fast_path(mode: str) -> None:
    layer = Telemetry(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    assert layer._on is False
    agent = Agent("writer", stack=[layer])
    model = ScriptedModel(["hi"], model="gpt-4o")
    run(mode, agent, model)
    assert len(model.calls) == 1


def test_event_sink_puts_session_events_on_the_agent_span(otel: Otel, mode: str) -> None:
    agent = Agent(
        "writer",
        stack=[otel.layer(), Emits("retry.scheduled")],
        event_sink=OpenTelemetryEventSink(),
    )
    run(mode, agent, ScriptedModel(["hi"], model="gpt-4o"))
    names = [e.name for e in otel.span("invoke_agent writer").events]
    assert names == [
        "turn.started",
        "retry.scheduled",
        "turn.completed",
        "tool.called",
        "retry.scheduled",
        "tool.completed",
        "agent.completed",
    ]
    assert [e.name for e in otel.span("chat gpt-4o").events] == ["retry.scheduled"]


@pytest.mark.parametrize("capture", [False, True])
def test_the_event_sink_exports_details_only_with_content_capture(
    otel: Otel, capture: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    sink = OpenTelemetryEventSink(capture_content=capture)
    agent = Agent("writer", stack=[otel.layer()], event_sink=sink)
    with agent.session() as session:
        session.emit("policy.warning", detail="rule text", data={"rule": "r"})
    (event,) = [e for e in otel.span("invoke_agent writer").events if e.name == "policy.warning"]
    attributes = dict(event.attributes or {})
    assert attributes["agentmw.rule"] == "r"
    assert ("agentmw.detail" in attributes) is capture
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    assert OpenTelemetryEventSink().capture_content is True
    with pytest.raises(TypeError, match="capture_content must be True or False"):
        OpenTelemetryEventSink(capture_content="yes")  # type: ignore[arg-type]


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="provider_name"):
        Telemetry(provider_name=" ")
    with pytest.raises(TypeError, match="capture_content"):
        Telemetry(capture_content="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tracer_provider must be an OpenTelemetry Tracer"):
        Telemetry(tracer_provider=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"meter_provider must be an OpenTelemetry MeterProv"):
        Telemetry(meter_provider=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="provider_name must be a string"):
        Telemetry(provider_name=3)  # type: ignore[arg-type]


def test_global_providers_are_looked_up_again_at_session_start(
    otel: Otel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import metrics, trace

    layer = Telemetry()  # no global SDK in the test process: proxies, fast path
    assert layer._on is False
    assert layer._settled is False
    # The global providers are set after the layer was built (as an app's setup may do).
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: otel.tracer_provider)
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: otel.meter_provider)
    with Agent("late", stack=[layer]).session() as session:
        session.run_turn(ScriptedModel(["x"]), "hi", model="m")
    assert [s.name for s in otel.spans()] == ["chat m", "invoke_agent late"]


def _proxy_meters() -> int:
    from opentelemetry import metrics

    provider = metrics.get_meter_provider()
    return len(getattr(provider, "_meters", ()))


def test_sessions_on_unset_global_providers_make_no_meter() -> None:
    # The API's proxy meter provider keeps every meter asked of it until a real provider is
    # set: a layer that resolved again per session would grow with the number of sessions.
    layer = Telemetry()
    before = _proxy_meters()
    agent = Agent("many", stack=[layer])
    for _ in range(50):
        with agent.session() as session:
            session.run_turn(ScriptedModel(["x"]), "hi", model="m")
    assert _proxy_meters() == before
    assert layer._on is False


async def test_async_sessions_on_unset_global_providers_make_no_meter() -> None:
    layer = Telemetry()
    before = _proxy_meters()
    agent = Agent("many-async", stack=[layer])
    for _ in range(50):
        async with agent.session() as session:
            await session.arun_turn(ScriptedModel(["x"]), "hi", model="m")
    assert _proxy_meters() == before
