"""Telemetry: GenAI spans and metrics for a small agent run, printed from in-memory exporters.

Runs offline: a scripted model stands in for the provider, and the OpenTelemetry SDK exports to
memory. In production pass your own TracerProvider/MeterProvider (OTLP exporter), or set the
global ones and use `Telemetry()` with no arguments.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmw import Agent, Call, Middleware, Usage
from agentmw.middleware import OpenTelemetryEventSink, Telemetry
from agentmw.testing import Reply, ScriptedModel


class FlakyOnce(Middleware):
    """Pretends the first attempt was retried (the Retry layer emits this event for real)."""

    def before(self, call: Call) -> None:
        if call.kind == "turn" and call.step == 1:
            call.emit("retry.scheduled", attempt=1, scenario="overloaded", delay=0.5)


def main() -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])

    telemetry = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    agent = Agent(
        "researcher",
        stack=[telemetry, FlakyOnce()],
        event_sink=OpenTelemetryEventSink(),  # session events on the invoke_agent span
    )
    model = ScriptedModel(
        [Reply("Paris.", Usage(input_tokens=42, output_tokens=3), model="gpt-4o-2024-08-06")],
        model="gpt-4o",
    )

    with agent.session(thread_id="demo-thread") as session:
        session.run_turn(model, "What is the capital of France?", model="gpt-4o")
        session.run_tool("lookup", lambda city: {"city": city, "population": 2_100_000}, "Paris")

    print("spans (children first):")
    for span in spans.get_finished_spans():
        parent = f" parent={span.parent.span_id:016x}" if span.parent else ""
        print(f"  {span.name} [{span.kind.name}] id={span.context.span_id:016x}{parent}")
        for key, value in sorted((span.attributes or {}).items()):
            print(f"      {key} = {value}")
        for event in span.events:
            print(f"      event {event.name} {dict(event.attributes or {})}")

    print("metrics:")
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    shown = value if value is not None else f"count={point.count} sum={point.sum}"
                    print(f"  {metric.name} [{metric.unit}] {dict(point.attributes)} {shown}")


if __name__ == "__main__":
    main()
