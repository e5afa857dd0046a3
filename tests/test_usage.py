"""`Usage`: validation, arithmetic and the built-in extraction from model responses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentmw import Usage
from agentmw.usage import extract_usage, usage_from_payload

FIELDS = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "tool_calls",
]


def test_defaults_are_zero() -> None:
    usage = Usage()
    assert usage.as_dict() == dict.fromkeys(FIELDS, 0)
    assert usage.total_tokens == 0


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(
    ("value", "error"),
    [(True, TypeError), (1.0, TypeError), ("3", TypeError), (None, TypeError), (-1, ValueError)],
)
def test_invalid_values_name_the_field(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=f"Usage.{field}"):
        Usage(**{field: value})  # type: ignore[arg-type]


def test_frozen_and_slotted() -> None:
    usage = Usage(1, 2)
    with pytest.raises(AttributeError):
        usage.input_tokens = 5  # type: ignore[misc]
    assert not hasattr(usage, "__dict__")


def test_add_and_total() -> None:
    a = Usage(1, 2, 3, 4, 5, 6)
    b = Usage(10, 20, 30, 40, 50, 60)
    assert a + b == Usage(11, 22, 33, 44, 55, 66)
    assert (a + b).total_tokens == 33
    assert a.__add__(3) is NotImplemented  # type: ignore[operator]


@given(st.lists(st.tuples(*[st.integers(0, 10**9)] * 6), max_size=20))
def test_sum_is_fieldwise(rows: list[tuple[int, ...]]) -> None:
    total = sum((Usage(*row) for row in rows), Usage())
    for i, name in enumerate(FIELDS):
        assert getattr(total, name) == sum(row[i] for row in rows)


def test_from_dict_round_trip_and_unknown_keys() -> None:
    usage = Usage(1, 2, 3, 4, 5, 6)
    assert Usage.from_dict(usage.as_dict()) == usage
    with pytest.raises(ValueError, match="bogus"):
        Usage.from_dict({"bogus": 1})


def test_extract_returned_usage() -> None:
    usage = Usage(3, 4)
    assert extract_usage(usage) is usage


@pytest.mark.parametrize("result", [None, "text", b"bytes", 3, 2.5, True, object(), {"x": 1}])
def test_extract_nothing(result: object) -> None:
    assert extract_usage(result) is None


def _openai(as_dict: bool) -> object:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "total_tokens": 140,
        "prompt_tokens_details": {"cached_tokens": 30},
        "completion_tokens_details": {"reasoning_tokens": 10},
    }
    if as_dict:
        return {"id": "x", "usage": usage}
    return SimpleNamespace(
        usage=SimpleNamespace(
            prompt_tokens=100,
            completion_tokens=40,
            total_tokens=140,
            prompt_tokens_details=SimpleNamespace(cached_tokens=30),
            completion_tokens_details=SimpleNamespace(reasoning_tokens=10),
        )
    )


def _anthropic(as_dict: bool) -> object:
    usage = {
        "input_tokens": 50,
        "output_tokens": 20,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 5,
    }
    if as_dict:
        return {"content": [], "usage": usage}
    return SimpleNamespace(content=[], usage=SimpleNamespace(**usage))


@pytest.mark.parametrize("as_dict", [False, True], ids=["object", "dict"])
def test_extract_openai_shape(as_dict: bool) -> None:
    assert extract_usage(_openai(as_dict)) == Usage(
        input_tokens=100, output_tokens=40, cache_read_tokens=30, reasoning_tokens=10
    )


@pytest.mark.parametrize("as_dict", [False, True], ids=["object", "dict"])
def test_extract_anthropic_shape_counts_cache_in_input(as_dict: bool) -> None:
    assert extract_usage(_anthropic(as_dict)) == Usage(
        input_tokens=85, output_tokens=20, cache_read_tokens=30, cache_write_tokens=5
    )


def test_extract_openai_responses_shape() -> None:
    payload = {
        "input_tokens": 80,
        "output_tokens": 12,
        "input_tokens_details": {"cached_tokens": 16},
        "output_tokens_details": {"reasoning_tokens": 4},
    }
    assert usage_from_payload(payload) == Usage(80, 12, cache_read_tokens=16, reasoning_tokens=4)


def test_extract_ignores_garbage_counts() -> None:
    assert extract_usage({"usage": {"prompt_tokens": -5, "completion_tokens": "7"}}) == Usage()
    assert extract_usage({"usage": {"unrelated": 1}}) is None
    assert extract_usage({"usage": Usage(2, 3)}) == Usage(2, 3)
