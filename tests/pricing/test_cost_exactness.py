"""`ModelPricing.cost` leaves out zero cache terms only where the `Decimal` stays the same.

The reference is the full formula (every term added, zero or not): the result must match in
value and exponent (`str` and `as_tuple`), since events show `str(cost)`.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from agentmw import ModelPricing, Usage

_MILLION = Decimal(1_000_000)


def _full(p: ModelPricing, u: Usage) -> Decimal:
    read, write = u.cache_read_tokens, u.cache_write_tokens
    inp = p.input_per_million
    r = inp if p.cache_read_per_million is None else p.cache_read_per_million
    w = inp if p.cache_write_per_million is None else p.cache_write_per_million
    uncached = max(u.input_tokens - read - write, 0)
    return (uncached * inp + read * r + write * w + u.output_tokens * p.output_per_million) / (
        _MILLION
    )


exact_rates = st.builds(
    lambda digits, places: Decimal(digits).scaleb(-places),
    st.integers(0, 10**9),
    st.integers(0, 9),
)
tokens = st.integers(0, 10**7)
zero_or_tokens = st.one_of(st.just(0), tokens)


@given(
    exact_rates,
    exact_rates,
    st.one_of(st.none(), exact_rates),
    st.one_of(st.none(), exact_rates),
    tokens,
    tokens,
    zero_or_tokens,
    zero_or_tokens,
)
def test_cost_is_the_full_formula_value_and_exponent(
    inp: Decimal,
    out: Decimal,
    read_rate: Decimal | None,
    write_rate: Decimal | None,
    input_tokens: int,
    output_tokens: int,
    read: int,
    write: int,
) -> None:
    pricing = ModelPricing(inp, out, read_rate, write_rate)
    usage = Usage(
        input_tokens=input_tokens + read + write,
        output_tokens=output_tokens,
        cache_read_tokens=read,
        cache_write_tokens=write,
    )
    got, want = pricing.cost(usage), _full(pricing, usage)
    assert got.as_tuple() == want.as_tuple()
    assert str(got) == str(want)


def test_a_finer_cache_rate_keeps_its_zero_term() -> None:
    # A zero term with more decimal places than the input rate sets the result's exponent.
    pricing = ModelPricing("1", "2", cache_read_per_million="0.0001")
    assert pricing._skip_zero == (False, True)
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    # 1000000 + 0.0000 + 0 = 1000000.0000: / 10**6 keeps the four places the zero term gave.
    assert str(pricing.cost(usage)) == str(_full(pricing, usage)) == "1.0000"
    assert str(ModelPricing("1", "2").cost(usage)) == "1"
    assert ModelPricing("1.5", "2")._skip_zero == (True, True)


def test_the_skip_flag_is_not_part_of_equality_or_repr() -> None:
    assert ModelPricing("1", "2") == ModelPricing(1, 2)
    assert hash(ModelPricing("1", "2")) == hash(ModelPricing(1, 2))
    assert "_skip_zero" not in repr(ModelPricing("1", "2"))
