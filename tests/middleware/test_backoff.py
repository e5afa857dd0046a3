from __future__ import annotations

import math
import random

import pytest

from agentmw.middleware import backoff_delay


@pytest.mark.parametrize(("attempt", "expected"), [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0)])
def test_none_is_capped_exponential(attempt: int, expected: float) -> None:
    assert backoff_delay(attempt, jitter="none") == expected


def test_huge_attempt_stays_at_cap() -> None:
    assert backoff_delay(10_000, jitter="none", cap=5.0) == 5.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 8])
def test_full_and_equal_bounds(attempt: int) -> None:
    rng = random.Random(7)
    ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
    for _ in range(300):
        assert 0.0 <= backoff_delay(attempt, jitter="full", rng=rng) <= ceiling
        assert ceiling / 2 <= backoff_delay(attempt, jitter="equal", rng=rng) <= ceiling


def test_full_jitter_spreads() -> None:
    rng = random.Random(1)
    values = {round(backoff_delay(3, rng=rng), 6) for _ in range(50)}
    assert len(values) > 40


def test_decorrelated_bounds() -> None:
    rng = random.Random(3)
    prev = None
    for attempt in range(1, 50):
        delay = backoff_delay(attempt, jitter="decorrelated", prev=prev, rng=rng, cap=10.0)
        low, high = 0.5, 3 * (prev or 0.5)
        assert min(low, 10.0) <= delay <= min(10.0, max(low, high))
        prev = delay


def test_rng_makes_it_reproducible() -> None:
    a = [backoff_delay(n, rng=random.Random(5)) for n in range(1, 6)]
    b = [backoff_delay(n, rng=random.Random(5)) for n in range(1, 6)]
    assert a == b


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"attempt": 0}, "attempt"),
        ({"attempt": 1, "base": -1}, "base"),
        ({"attempt": 1, "base": math.nan}, "base"),
        ({"attempt": 1, "cap": -0.1}, "cap"),
        ({"attempt": 1, "jitter": "wild"}, "jitter"),
        ({"attempt": 1, "prev": -2.0, "jitter": "decorrelated"}, "prev"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, object], argument: str) -> None:
    attempt = kwargs.pop("attempt")
    with pytest.raises(ValueError, match=argument):
        backoff_delay(attempt, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempt": True}, "attempt must be an int, got bool True"),
        ({"attempt": 1, "base": True}, "base must be a number, got bool True"),
        ({"attempt": 1, "cap": "30"}, "cap must be a number, got str '30'"),
        ({"attempt": 1, "jitter": 1}, "jitter must be one of none, full, equal, decorrelated"),
    ],
)
def test_wrong_types_raise_type_error(kwargs: dict[str, object], message: str) -> None:
    attempt = kwargs.pop("attempt")
    with pytest.raises(TypeError, match=message):
        backoff_delay(attempt, **kwargs)  # type: ignore[arg-type]


def test_an_infinite_cap_means_no_cap() -> None:
    assert backoff_delay(3, base=1.0, cap=math.inf, jitter="none") == 4.0
