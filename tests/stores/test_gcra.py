"""GCRA: admitted units in any window never exceed rate·window + burst."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentmw.stores.gcra import GCRA, Rate

RATE = Rate("tpm", per_second=10.0, burst=50.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 5, allow_nan=False), st.integers(1, 50), st.booleans()),
        min_size=1,
        max_size=60,
    )
)
def test_admitted_tokens_in_any_window_are_bounded(steps: list[tuple[float, int, bool]]) -> None:
    gcra = GCRA()
    now = 0.0
    admitted: list[tuple[float, int]] = []
    for dt, cost, wait in steps:
        now += dt
        delay = gcra.acquire("k", [(RATE, float(cost))], now)
        if delay and wait:  # a caller that sleeps as told is then admitted
            now += delay
            delay = gcra.acquire("k", [(RATE, float(cost))], now)
            assert delay == 0.0
        if delay == 0.0:
            admitted.append((now, cost))
    for i, (start, _) in enumerate(admitted):
        total = 0
        for at, cost in admitted[i:]:
            total += cost
            assert total <= RATE.per_second * (at - start) + RATE.burst + 1e-6


def test_all_or_none_across_dimensions() -> None:
    gcra = GCRA()
    rpm, tpm = Rate("rpm", 1.0, 5.0), Rate("tpm", 10.0, 100.0)
    assert gcra.acquire("k", [(rpm, 1.0), (tpm, 100.0)], 0.0) == 0.0
    # rpm has room, tpm does not: nothing is taken from rpm either.
    assert gcra.acquire("k", [(rpm, 1.0), (tpm, 50.0)], 0.0) > 0
    for _ in range(4):
        assert gcra.acquire("k", [(rpm, 1.0)], 0.0) == 0.0
    assert gcra.acquire("k", [(rpm, 1.0)], 0.0) > 0


def test_refund_never_exceeds_capacity() -> None:
    gcra = GCRA()
    tpm = Rate("tpm", 1.0, 10.0)
    gcra.adjust("k", [(tpm, -100.0)], 0.0)
    assert gcra.acquire("k", [(tpm, 10.0)], 0.0) == 0.0
    assert gcra.acquire("k", [(tpm, 1.0)], 0.0) == 1.0
