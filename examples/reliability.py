"""Reliability layers offline: a flaky primary model, retries, a breaker, and a fallback model.

Run: python examples/reliability.py   (no network, no API keys; a few hundredths of a second)
"""

from __future__ import annotations

from typing import Any

from agentmw import Agent, Stack, agent_turn
from agentmw.middleware import BreakerState, CircuitBreaker, Fallback, Retry
from agentmw.testing import ScriptedModel, capture_events


class ProviderError(Exception):
    """Shaped like an SDK error: a status code and a response with headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status
        self.response = type("Response", (), {"status_code": status, "headers": headers or {}})()


primary = ScriptedModel(
    [
        ProviderError(429, "rate limited", {"retry-after-ms": "20"}),  # honoured: waits 0.02 s
        "primary answers the first question",
        ProviderError(503, "overloaded"),
        ProviderError(503, "overloaded"),  # retries run out: Fallback takes over
        ProviderError(503, "overloaded"),  # the breaker opens on this one
    ],
    model="primary",
)
backup = ScriptedModel(["backup answer 1", "backup answer 2"], model="backup")
models = {"primary": primary, "backup": backup}

breaker = CircuitBreaker("llm", failure_threshold=3, recovery_timeout=60.0)
stack = Stack([Fallback(["backup"]), Retry(3, base=0.01, cap=0.05), breaker])
agent = Agent("assistant", stack=stack)


@agent_turn(model="primary")
def ask(question: str, *, model: str = "primary") -> Any:
    return models[model](question, model=model)


def main() -> None:
    with capture_events() as events, agent.session() as session:
        for question in ("first?", "second?", "third?"):
            reply = ask(question)
            print(f"{question:8} -> {reply.text!r} (via {reply.model})")
    print("primary circuit:", breaker.state("primary").value)
    assert breaker.state("primary") is BreakerState.OPEN
    print("events:", ", ".join(n for n in events.names() if n.split(".")[0] in _LAYERS))
    for entry in session.summary()["recoveries"]:
        print("recovery:", {k: entry[k] for k in ("action", "scenario", "model") if k in entry})


_LAYERS = {"retry", "breaker", "fallback"}

if __name__ == "__main__":
    main()
