"""Price files and ModelPricing agree on every message; hostile files get one clear line."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentmw import ModelPricing
from agentmw.cli import main
from agentmw.pricing import PricingTable, check_pricing_file, read_pricing_file


@pytest.mark.parametrize(
    ("field", "value", "error", "problem"),
    [
        ("input_per_million", -1, ValueError, "must be a finite number >= 0, got -1"),
        ("output_per_million", "x", ValueError, "must be a number >= 0, got 'x'"),
        ("input_per_million", float("inf"), ValueError, "must be a finite number >= 0, got inf"),
        ("cache_read_per_million", True, TypeError, "must be a number >= 0 (int, float"),
        ("output_per_million", [1], TypeError, "must be a number >= 0 (int, float"),
    ],
)
def test_model_pricing_in_code_says_what_the_file_loader_says(
    tmp_path: Path, field: str, value: Any, error: type[Exception], problem: str
) -> None:
    entry: dict[str, Any] = {"input_per_million": 1, "output_per_million": 2, field: value}
    with pytest.raises(error) as info:
        ModelPricing(**entry)
    assert str(info.value).startswith(f"field {field!r}: {problem}")
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"m": entry}, allow_nan=True))
    _, errors = check_pricing_file(path)
    assert errors == [f"{path}: model 'm': {info.value}"]


def test_model_pricing_keeps_exact_decimals() -> None:
    pricing = ModelPricing(input_per_million=0.15, output_per_million="0.6")
    assert pricing.input_per_million == Decimal("0.15")
    assert pricing.output_per_million == Decimal("0.6")
    assert pricing.cache_read_per_million is None
    assert ModelPricing.from_dict(pricing.as_dict()) == pricing
    assert hash(pricing) == hash(ModelPricing(input_per_million="0.15", output_per_million=0.6))
    with pytest.raises(ValueError, match="field 'output_per_million': is required"):
        ModelPricing.from_dict({"input_per_million": 1})


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deeply to parse"),
        ("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000, "not valid TOML: nested too deeply"),
        ("bad.json", b'{"m": {"input_per_million": 1}}\xff', "not valid UTF-8 (byte 31)"),
    ],
)
def test_a_hostile_price_file_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: Any, problem: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match="^" + str(path).replace(".", r"\.")) as info:
        read_pricing_file(path)
    assert problem in str(info.value)
    assert "\n" not in str(info.value)
    table = PricingTable({"kept": ModelPricing(input_per_million=1, output_per_million=1)})
    with pytest.raises(ValueError, match=str(path).replace(".", r"\.")):
        table.load_file(path)
    assert table.models() == ["kept"]  # nothing registered changed
    assert main(["pricing", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [str(info.value)]


def test_register_refuses_a_pricing_that_is_neither_a_model_pricing_nor_a_mapping() -> None:
    table = PricingTable()
    with pytest.raises(TypeError, match="pricing must be a ModelPricing or a mapping"):
        table.register("m", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="field 'input_per_million': must be a finite number"):
        table.register("m", {"input_per_million": -1, "output_per_million": 1})
    assert table.models() == []
