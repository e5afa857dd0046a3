"""Streaming through `Guardrails([PIIRedactor()])`: cost per 20-character chunk against a bare
generator, interleaved in one run (median of rounds).

Two streams of 20-character chunks: prose without personal data (most of a model's answer) and
the same prose with an e-mail address, a phone number and a card number every ~400 characters.
The guarded cost is what the layer adds per chunk (guarded minus bare, both through a decorated
generator under the same `Stack`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

from agentmw import Stack, agent_turn
from agentmw.guardrails import PIIRedactor
from agentmw.middleware import Guardrails

from ._timing import table

CHUNK = 20
ROUNDS = 9
STREAMS = 20
PROSE = (
    "The quarterly report shows steady growth across every region, and the team expects the "
    "trend to continue as new customers arrive. Support tickets fell while satisfaction rose, "
    "which the managers attribute to the revised onboarding guide and faster answers. "
)
PII = "Reach Dana at dana.lee@example.org or +1 415-555-0100; card 4111 1111 1111 1111. "


def _chunks(text: str) -> list[str]:
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


def _per_chunk(fn: object, chunks: list[str]) -> float:
    start = time.perf_counter()
    for _ in range(STREAMS):
        for _ in fn():  # type: ignore[operator]
            pass
    return (time.perf_counter() - start) / (STREAMS * len(chunks)) * 1e6


def _measure(text: str) -> tuple[float, float, int]:
    chunks = _chunks(text)

    def source() -> Iterator[str]:
        yield from chunks

    bare = agent_turn(stack=Stack([]))(source)
    guarded = agent_turn(stack=Stack([Guardrails([PIIRedactor()])]))(source)
    _per_chunk(bare, chunks), _per_chunk(guarded, chunks)
    rounds = [(_per_chunk(bare, chunks), _per_chunk(guarded, chunks)) for _ in range(ROUNDS)]
    return (
        statistics.median(r[0] for r in rounds),
        statistics.median(r[1] - r[0] for r in rounds),
        len(chunks),
    )


def run() -> str:
    started = time.perf_counter()
    rows = []
    verdicts = []
    for label, text in (
        ("prose, no personal data", PROSE * 12),
        ("prose + e-mail, phone, card every ~400 chars", (PROSE + PII) * 6),
    ):
        bare, added, count = _measure(text)
        verdicts.append(f"{added:.2f}")
        rows.append([label, count, f"{bare:.2f}", f"**{added:.2f}**"])
    return "\n".join(
        [
            "## Streaming guardrails (`Guardrails([PIIRedactor()])`, 20-character chunks)",
            "",
            table(
                ["stream", "chunks", "bare generator (µs/chunk)", "added by the guard (µs/chunk)"],
                rows,
            ),
            "",
            f"Target: <= 3 µs added per chunk ({' / '.join(verdicts)}); default 64-character "
            f"window; median of {ROUNDS} interleaved rounds of {STREAMS} streams each.",
            "",
            f"_({time.perf_counter() - started:.0f}s)_",
        ]
    )


if __name__ == "__main__":
    print(run())
