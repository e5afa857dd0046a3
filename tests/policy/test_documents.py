"""Policy documents: symbolic operators, known facts, strict types, depth and size limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentmw.errors import DocumentError
from agentmw.policy import PolicyEngine, fact


def _rule(when: dict[str, Any], name: str = "r", **extra: Any) -> dict[str, Any]:
    return {"name": name, "when": when, "then": [{"action": "warn", "message": "m"}], **extra}


def _doc(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rules)}


@pytest.mark.parametrize(
    ("symbol", "named", "value", "facts", "matches"),
    [
        ("==", "eq", "writer", {"role": "writer"}, True),
        ("!=", "ne", "writer", {"role": "writer"}, False),
        (">", "gt", 5, {"cost_usd": 6}, True),
        (">=", "ge", 5, {"cost_usd": 5}, True),
        ("<", "lt", 5, {"cost_usd": 5}, False),
        ("<=", "le", 5, {"cost_usd": 5}, True),
    ],
)
def test_symbolic_operators_are_aliases_of_the_named_ones(
    symbol: str, named: str, value: Any, facts: dict[str, Any], matches: bool
) -> None:
    name = next(iter(facts))
    by_symbol = PolicyEngine.from_dict(_doc(_rule({"op": symbol, "fact": name, "value": value})))
    by_name = PolicyEngine.from_dict(_doc(_rule({"op": named, "fact": name, "value": value})))
    assert bool(by_symbol.evaluate(facts)) is matches
    assert bool(by_name.evaluate(facts)) is matches
    assert by_symbol.to_dict() == by_name.to_dict()  # written back with the named operator


def test_in_and_not_in_take_values() -> None:
    engine = PolicyEngine.from_dict(
        _doc(
            _rule({"op": "in", "fact": "role", "values": ["a", "b"]}, "in"),
            _rule({"op": "not in", "fact": "role", "values": ["a", "b"]}, "out"),
        )
    )
    assert [a.rule for a in engine.evaluate({"role": "a"})] == ["in"]
    assert [a.rule for a in engine.evaluate({"role": "z"})] == ["out"]
    assert engine.to_dict()["rules"][1]["when"] == {
        "op": "not_in",
        "fact": "role",
        "values": ["a", "b"],
    }
    assert PolicyEngine.from_dict(engine.to_dict()).to_dict() == engine.to_dict()
    assert fact("role").is_not_in(["a"]).check({"role": "b"})


def test_an_unknown_fact_is_an_error_with_a_did_you_mean() -> None:
    doc = _doc(_rule({"op": "all", "conditions": [{"op": ">", "fact": "cost_usdd", "value": 1}]}))
    with pytest.raises(DocumentError) as info:
        PolicyEngine.from_dict(doc)
    assert info.value.path == "rules[0].when.conditions[0].fact"
    assert "unknown fact 'cost_usdd'; did you mean 'cost_usd'?" in str(info.value)
    assert "extra_facts" in str(info.value)


def test_a_fact_with_no_close_match_lists_the_known_ones() -> None:
    with pytest.raises(DocumentError, match=r"unknown fact 'zzz'; known facts: completed_roles"):
        PolicyEngine.from_dict(_doc(_rule({"op": "eq", "fact": "zzz", "value": 1})))


def test_facts_of_your_own_are_declared_with_extra_facts(tmp_path: Path) -> None:
    doc = _doc(_rule({"op": ">=", "fact": "open_tickets", "value": 3}))
    engine = PolicyEngine.from_dict(doc, extra_facts=["open_tickets"])
    assert engine.evaluate({"open_tickets": 4})
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    assert PolicyEngine.from_file(path, extra_facts=["open_tickets"]).evaluate({"open_tickets": 3})
    with pytest.raises(DocumentError, match=rf"invalid policy document {path}: "):
        PolicyEngine.from_file(path)
    with pytest.raises(TypeError, match="extra_facts must be a list"):
        PolicyEngine.from_dict(doc, extra_facts="open_tickets")


def test_a_boolean_is_never_a_number() -> None:
    with pytest.raises(DocumentError) as info:
        PolicyEngine.from_dict(_doc(_rule({"op": "always"}, priority=True)))
    assert info.value.path == "rules[0].priority"
    with pytest.raises(DocumentError) as info:
        PolicyEngine.from_dict(_doc(_rule({"op": ">", "fact": "turns", "value": True})))
    assert info.value.path == "rules[0].when.value"
    assert "a boolean is never a number" in str(info.value)
    # Equality with a boolean is fine.
    assert PolicyEngine.from_dict(_doc(_rule({"op": "==", "fact": "tool", "value": False})))


def test_a_deeply_nested_document_names_the_depth_limit() -> None:
    when: dict[str, Any] = {"op": "always"}
    for _ in range(100_000):
        when = {"op": "not", "condition": when}
    with pytest.raises(DocumentError, match="nested deeper than 64 levels") as info:
        PolicyEngine.from_dict(_doc(_rule(when)))
    assert info.value.path.startswith("rules[0].when.condition.condition")


def test_a_deep_file_is_refused_before_the_parser_recurses(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DocumentError, match=rf"policy document {path}: .*nested deeper"):
        PolicyEngine.from_file(path)


def test_twenty_thousand_rules_load_and_errors_are_capped() -> None:
    good = _doc(
        *(_rule({"op": ">=", "fact": "cost_usd", "value": i}, f"r{i}") for i in range(20_000))
    )
    engine = PolicyEngine.from_dict(good)
    assert len(engine.rules) == 20_000
    bad = _doc(*(_rule({"op": ">", "fact": "costs", "value": 1}, f"r{i}") for i in range(20_000)))
    with pytest.raises(DocumentError) as info:
        PolicyEngine.from_dict(bad)
    message = str(info.value)
    assert len(info.value.problems) == 20_000
    assert message.count("unknown fact 'costs'") == 20
    assert message.endswith("; and 19980 more")
    assert len(message) < 5_000


def test_repeated_rule_names_are_reported_with_both_places() -> None:
    with pytest.raises(DocumentError) as info:
        PolicyEngine.from_dict(_doc(_rule({"op": "always"}, "a"), _rule({"op": "always"}, "a")))
    assert info.value.problems == [("rules[1].name", "rule name 'a' repeats rules[0].name")]


def test_a_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"rules: []\n\xff\xfe")
    with pytest.raises(DocumentError, match=rf"{path}: <document>: is not valid UTF-8 \(byte 10\)"):
        PolicyEngine.from_file(path)
