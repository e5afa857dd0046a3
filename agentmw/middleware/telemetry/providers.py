"""Resolving OpenTelemetry providers (no-op or not) and the GenAI metric instruments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace

from agentmw._version import version
from agentmw.events import Event
from agentmw.middleware.telemetry import semconv as sc
from agentmw.usage import Usage

__all__: list[str] = []  # internal: the Telemetry layer's providers


try:  # the API's stand-in before a global meter provider is set (no public name)
    from opentelemetry.metrics._internal import _ProxyMeterProvider as _ProxyMeters
except ImportError:  # pragma: no cover - a future API moved it: treat the proxy as live
    _ProxyMeters = ()  # type: ignore[assignment,misc]

SCOPE = "agentmw"


@dataclass(frozen=True, slots=True)
class Providers:
    """What a Telemetry layer uses: the tracer and meter, and whether each one records."""

    tracer: trace.Tracer
    meter: metrics.Meter
    tracing: bool
    metering: bool
    tracer_unset: bool  # the global tracer provider is still the API's proxy
    meter_unset: bool  # the global meter provider is still the API's proxy

    @property
    def settled(self) -> bool:
        """Nothing can change any more (explicit providers, or globals already set)."""
        return not self.tracer_unset and not self.meter_unset

    def outdated(self) -> bool:
        """True when a global provider that was unset has been set since.

        Asks without making a tracer or meter: each `get_meter` on the API's proxy provider is
        kept by it until a real provider arrives, so resolving again on every session or
        recheck would grow with the number of sessions.
        """
        return (
            self.tracer_unset
            and not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        ) or (self.meter_unset and not isinstance(metrics.get_meter_provider(), _ProxyMeters))


def resolve(
    tracer_provider: trace.TracerProvider | None, meter_provider: metrics.MeterProvider | None
) -> Providers:
    """The tracer and meter from the given providers, else from the global ones."""
    __version__ = version()

    tp = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    mp = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    tracer = tp.get_tracer(SCOPE, __version__)
    meter = mp.get_meter(SCOPE, __version__)
    tracer_unset = isinstance(tp, trace.ProxyTracerProvider)
    meter_unset = isinstance(mp, _ProxyMeters)
    return Providers(
        tracer,
        meter,
        tracing=not tracer_unset and not isinstance(tracer, trace.NoOpTracer),
        metering=not meter_unset and not isinstance(meter, metrics.NoOpMeter),
        tracer_unset=tracer_unset and tracer_provider is None,
        meter_unset=meter_unset and meter_provider is None,
    )


class Instruments:
    """The histograms and counters of the GenAI conventions plus agentmw's own counters."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE,
            unit=sc.METRIC_TOKEN_USAGE_UNIT,
            description="Input and output tokens used per model turn.",
            explicit_bucket_boundaries_advisory=list(sc.METRIC_TOKEN_USAGE_BUCKETS),
        )
        self.duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit=sc.METRIC_OPERATION_DURATION_UNIT,
            description="Duration of model turns and tool calls, retries included.",
            explicit_bucket_boundaries_advisory=list(sc.METRIC_OPERATION_DURATION_BUCKETS),
        )
        self.cost = meter.create_counter(
            sc.METRIC_COST, unit=sc.METRIC_COST_UNIT, description="Cost of model turns in USD."
        )
        self.retries = meter.create_counter(
            sc.METRIC_RETRIES, unit=sc.METRIC_RETRIES_UNIT, description="Retries scheduled."
        )
        self.breaker_transitions = meter.create_counter(
            sc.METRIC_BREAKER_TRANSITIONS,
            unit=sc.METRIC_BREAKER_TRANSITIONS_UNIT,
            description="Circuit breaker state changes.",
        )

    def on_call(
        self,
        attrs: dict[str, Any],
        duration: float,
        error_type: str | None,
        usage: Usage | None,
        cost: float | None,
    ) -> None:
        """Record one finished call: its duration, and for a turn its tokens and cost."""
        self.duration.record(
            duration, attrs if error_type is None else {**attrs, sc.ERROR_TYPE: error_type}
        )
        if usage is not None and attrs.get(sc.GEN_AI_OPERATION_NAME) in (
            sc.OP_CHAT,
            sc.OP_EMBEDDINGS,
        ):
            self.token_usage.record(
                usage.input_tokens, {**attrs, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_INPUT}
            )
            self.token_usage.record(
                usage.output_tokens, {**attrs, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_OUTPUT}
            )
        if cost is not None:
            self.cost.add(cost, attrs)

    def on_event(self, event: Event, attrs: dict[str, Any]) -> None:
        """Count retries and breaker transitions seen on a call."""
        if event.name == sc.EVENT_RETRY_SCHEDULED:
            self.retries.add(1, attrs)
        elif event.name in sc.BREAKER_TRANSITION_EVENTS:
            state = event.name.partition(".")[2]
            self.breaker_transitions.add(1, {**attrs, sc.AGENTMW_BREAKER_STATE: state})
