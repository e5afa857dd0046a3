"""Pricing: exact money, price files, model matching, unknown-model warnings, format_cost."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agentmw import Agent, ModelPricing, Usage, register_pricing
from agentmw.pricing import (
    PricingTable,
    call_cost,
    check_pricing_file,
    default_pricing,
    format_cost,
    has_pricing,
    load_pricing_from_file,
    pricing_for,
    read_pricing_file,
)
from agentmw.pricing.table import _reset_warnings
from agentmw.testing import Reply, ScriptedModel

PRICE = ModelPricing(input_per_million="2.50", output_per_million="10")


@pytest.fixture(autouse=True)
def _fresh_default() -> Iterator[None]:
    """An empty default table for each test; what other modules registered comes back after."""
    table = default_pricing()
    with table._lock:
        saved = dict(table._prices), dict(table._folded)
        table._prices.clear()
        table._folded.clear()
        table._resolved = {}
    _reset_warnings()
    yield
    with table._lock:
        table._prices.clear()
        table._folded.clear()
        table._prices.update(saved[0])
        table._folded.update(saved[1])
        table._resolved = {}


def test_cost_formula_with_cache_rates() -> None:
    p = ModelPricing(
        input_per_million="3",
        output_per_million="15",
        cache_read_per_million="0.30",
        cache_write_per_million="3.75",
    )
    usage = Usage(
        input_tokens=1000, output_tokens=200, cache_read_tokens=300, cache_write_tokens=100
    )
    # 600 uncached * 3 + 300 * 0.30 + 100 * 3.75 + 200 * 15, per million
    assert p.cost(usage) == Decimal("0.005265")


def test_cache_rates_default_to_input_rate() -> None:
    usage = Usage(input_tokens=1000, output_tokens=0, cache_read_tokens=400)
    assert PRICE.cost(usage) == Decimal("0.0025")


def test_a_million_turns_cost_exactly_price_times_count() -> None:
    table = PricingTable({"m": ModelPricing(input_per_million="0.15", output_per_million="0.6")})
    usage = Usage(input_tokens=123, output_tokens=45)
    one = table.cost("m", usage)
    total = sum(itertools.repeat(one, 1_000_000), Decimal(0))
    assert total == one * 1_000_000
    assert total == Decimal("45.45")


@pytest.mark.parametrize(
    ("name", "priced"),
    [
        ("gpt-4o", True),
        ("gpt-4o-2024-08-06", True),
        ("gpt-4o-20250514", True),
        ("gpt-4o-latest", True),
        ("gpt-4o@2024-05-13", True),
        ("openai/gpt-4o", True),
        ("openai/gpt-4o-2024-08-06", True),
        ("gpt-4o-mini", False),
        ("gpt-4", False),
        ("gpt-4o-mini-2024-07-18", False),
    ],
)
def test_matching_rules(name: str, priced: bool) -> None:
    table = PricingTable({"gpt-4o": PRICE})
    assert (table.get(name) is PRICE) is priced


def test_mini_gets_its_own_price_not_the_prefix() -> None:
    mini = ModelPricing(input_per_million="0.15", output_per_million="0.6")
    table = PricingTable({"gpt-4o": PRICE, "gpt-4o-mini": mini})
    assert table.get("gpt-4o-mini-2024-07-18") is mini


def test_register_on_conflict() -> None:
    other = ModelPricing(input_per_million="1", output_per_million="1")
    register_pricing("m", PRICE)
    register_pricing("m", other, on_conflict="keep")
    assert pricing_for("m") is PRICE
    with pytest.raises(ValueError, match="already has a price"):
        register_pricing("m", other, on_conflict="error")
    register_pricing("m", other)
    assert pricing_for("m") is other
    assert has_pricing("m")
    with pytest.raises(ValueError, match="on_conflict"):
        register_pricing("m", other, on_conflict="nope")  # type: ignore[arg-type]


def test_negative_rate_rejected() -> None:
    with pytest.raises(ValueError, match="input_per_million"):
        ModelPricing(input_per_million="-1", output_per_million="1")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_json_and_toml(tmp_path: Path) -> None:
    j = _write(
        tmp_path, "p.json", json.dumps({"a": {"input_per_million": 1, "output_per_million": 2}})
    )
    t = _write(
        tmp_path,
        "p.toml",
        '[models.b]\ninput_per_million = "0.5"\noutput_per_million = "1.5"\n',
    )
    assert load_pricing_from_file(j) == ["a"]
    assert load_pricing_from_file(t) == ["b"]
    assert pricing_for("b") == ModelPricing(input_per_million="0.5", output_per_million="1.5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", r"p\.json: not valid"),
        (
            '{"good": {"input_per_million": 1, "output_per_million": 1},'
            ' "bad": {"input_per_million": -1, "output_per_million": 1}}',
            r"p\.json: model 'bad': field 'input_per_million'",
        ),
        (
            '{"good": {"input_per_million": 1, "output_per_million": 1},'
            ' "odd": {"input_per_million": 1, "output_per_million": 1, "colour": 2}}',
            r"p\.json: model 'odd': field 'colour'",
        ),
        ('{"x": 3}', r"p\.json: model 'x'"),
    ],
)
def test_bad_files_merge_nothing(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, "p.json", text)
    with pytest.raises(ValueError, match=expected):
        load_pricing_from_file(path)
    assert default_pricing().models() == []


def test_unknown_model_costs_zero_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PricingTable()
    with caplog.at_level(logging.WARNING, logger="agentmw.pricing"):
        for _ in range(3):
            assert table.cost("mystery", Usage(10, 10)) == 0
        table.cost("other", Usage(1, 1))
    messages = [r.getMessage() for r in caplog.records if r.name == "agentmw.pricing"]
    assert len(messages) == 2
    assert "mystery" in messages[0]


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0.0042"), "$0.0042"),
        (Decimal("1.234"), "$1.23"),
        (Decimal("0.01"), "$0.01"),
        (Decimal(0), "$0.00"),
        (Decimal("0.00000123"), "$0.0000012"),
        (Decimal("1234.5"), "$1,234.50"),
    ],
)
def test_format_cost(amount: Decimal, text: str) -> None:
    assert format_cost(amount) == text


def test_agent_table_wins_and_call_cost_is_cached() -> None:
    register_pricing("m", ModelPricing(input_per_million="100", output_per_million="100"))
    table = PricingTable({"m": ModelPricing(input_per_million="1", output_per_million="1")})
    agent = Agent("a", pricing=table)
    model = ScriptedModel([Reply("x", Usage(1000, 1000))])
    with agent.session() as s:
        s.run_turn(model, model="m")
        assert s.cost_usd == Decimal("0.002")
        summary = s.summary()
    assert summary["cost_usd"] == Decimal("0.002")
    assert summary["cost"] == "$0.0020"
    assert summary["models"]["m"]["cost"] == "$0.0020"


def test_call_cost_computed_once() -> None:
    from agentmw import Call

    call = Call("turn", "t", print, model="m", usage=Usage(1, 1))
    call.cost_usd = Decimal("7")
    assert call_cost(call) == Decimal("7")


def test_from_genai_prices_prices_unregistered_models() -> None:
    pytest.importorskip("genai_prices")
    table = PricingTable.from_genai_prices({"mine": PRICE})
    assert table.cost("mine", Usage(1_000_000, 0)) == Decimal("2.5")
    cost = table.cost("gpt-4o", Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=200))
    assert cost == Decimal("0.00325")
    assert table.cost("no-such-model-xyz", Usage(1, 1)) == 0


def test_read_pricing_file_reports_every_invalid_entry(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        '{"a": {"input_per_million": -1, "output_per_million": 1},'
        ' "b": {"input_per_million": 1}, "ok": {"input_per_million": 1, "output_per_million": 1}}'
    )
    with pytest.raises(ValueError, match=r"(?s)'a'.*input_per_million.*'b'.*output_per_million"):
        read_pricing_file(path)
    prices, errors = check_pricing_file(path)
    assert list(prices) == ["ok"]
    assert len(errors) == 2


def test_resolution_is_memoized_but_follows_later_registrations() -> None:
    table = PricingTable()
    assert table.get("gpt-4o-2024-08-06") is None  # resolved (to nothing) and remembered
    table.register("gpt-4o", ModelPricing(input_per_million=5, output_per_million=15))
    found = table.get("gpt-4o-2024-08-06")
    assert found is not None
    assert found.input_per_million == Decimal(5)
    table.update(
        {"gpt-4o-2024-08-06": ModelPricing(input_per_million=2, output_per_million=8)},
        on_conflict="overwrite",
    )
    exact = table.get("gpt-4o-2024-08-06")
    assert exact is not None
    assert exact.input_per_million == Decimal(2)


@pytest.mark.parametrize(
    "name", ["GPT-4o", "gpt-4O", "OpenAI/GPT-4o", "GPT-4o-2024-08-06", "openai/GPT-4O-latest"]
)
def test_lookup_ignores_case_after_the_exact_rules(name: str) -> None:
    table = PricingTable({"gpt-4o": PRICE})
    assert table.get(name) == PRICE
    assert table.priced(name)
    assert table.get("GPT-4o-mini") is None  # still never a bare prefix


def test_an_exact_registration_wins_over_a_case_insensitive_one() -> None:
    other = ModelPricing(input_per_million=1, output_per_million=1)
    table = PricingTable({"gpt-4o": PRICE})
    assert table.get("GPT-4o") == PRICE
    table.register("GPT-4o", other)
    assert (table.get("GPT-4o"), table.get("gpt-4o")) == (other, PRICE)
    register_pricing("Claude-X", other)  # the default table too
    assert pricing_for("claude-x") == other


def test_priced_asks_the_fallback_source() -> None:
    table = PricingTable(fallback=lambda model, usage: Decimal(0) if model == "fb" else None)
    assert table.priced("fb")
    assert not table.priced("other")
    assert not table.priced(None)
    assert not table.priced("")
