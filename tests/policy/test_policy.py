"""Policy engine: conditions, ordering, documents (round trip, error paths), async conditions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agentmw.errors import DocumentError
from agentmw.policy import (
    Action,
    PolicyEngine,
    Rule,
    abort,
    all_of,
    any_of,
    deny,
    emit,
    fact,
    handoff,
    not_,
    require_approval,
    switch_model,
    warn,
)

DOC: dict[str, Any] = {
    "rules": [
        {
            "name": "expensive",
            "priority": 10,
            "when": {
                "op": "all",
                "conditions": [
                    {"op": "gt", "fact": "cost_usd", "value": 5},
                    {"op": "not", "condition": {"op": "in", "fact": "role", "values": ["admin"]}},
                ],
            },
            "then": [{"action": "deny", "reason": "over budget"}],
        },
        {
            "name": "cheap-model",
            "when": {"op": "any", "conditions": [{"op": "ge", "fact": "turns", "value": 3}]},
            "then": [
                {"action": "switch_model", "model": "small"},
                {"action": "warn", "message": "long run"},
            ],
        },
        {"name": "always", "priority": 90, "then": [{"action": "emit", "event": "policy.seen"}]},
        {
            "name": "writes",
            "priority": 20,
            "when": {"op": "contains", "fact": "completed_roles", "value": "reviewer"},
            "then": [
                {"action": "require_approval", "prompt": "ship it?"},
                {"action": "handoff", "target_role": "publisher"},
                {"action": "abort", "reason": "stop"},
            ],
        },
    ]
}


def test_evaluate_orders_by_priority_and_applies_all_matches() -> None:
    engine = PolicyEngine(
        [
            Rule("late", fact("x") == 1, warn("late"), priority=80),
            Rule("early", fact("x") > 0, [deny("no"), emit("e")], priority=5),
            Rule("miss", fact("x") < 0, warn("never")),
        ]
    )
    actions = engine.evaluate({"x": 1})
    assert [(a.kind, a.rule) for a in actions] == [
        ("deny", "early"),
        ("emit", "early"),
        ("warn", "late"),
    ]


def test_conditions() -> None:
    facts = {"cost_usd": 6.0, "role": "writer", "tools": ("a", "b"), "none": None}
    assert (fact("cost_usd") > 5).check(facts)
    assert not (fact("cost_usd") <= 5).check(facts)
    assert fact("role").is_in(["writer", "editor"]).check(facts)
    assert fact("tools").contains("b").check(facts)
    assert (fact("role") != "admin").check(facts)
    assert not (fact("missing") > 1).check(facts)  # missing facts never match comparisons
    assert not (fact("role") > 1).check(facts)  # incomparable types do not raise
    assert all_of(fact("cost_usd") > 1, lambda f: f["role"] == "writer").check(facts)
    assert any_of(fact("cost_usd") > 100, not_(fact("role") == "admin")).check(facts)
    assert ((fact("cost_usd") > 1) & ~(fact("role") == "admin") | (fact("x") == 1)).check(facts)


def test_actions_validate() -> None:
    assert switch_model("m") == Action("switch_model", "m")
    with pytest.raises(ValueError, match="non-blank"):
        deny("")
    with pytest.raises(ValueError, match="unique"):
        PolicyEngine([Rule("a", True, warn("x")), Rule("a", True, warn("y"))])
    with pytest.raises(ValueError, match="then must hold at least one Action"):
        Rule("a", True, [])
    with pytest.raises(TypeError, match="then must hold only Actions"):
        Rule("a", True, ["deny"])  # type: ignore[list-item]
    assert [handoff("x").kind, abort("y").kind] == ["handoff", "abort"]
    assert require_approval("ok?").value == "ok?"


async def test_nested_async_conditions() -> None:
    async def slow_check(facts: Any) -> bool:
        await asyncio.sleep(0)
        return bool(facts["role"] == "writer")

    engine = PolicyEngine(
        [Rule("deep", all_of(any_of(fact("x") == 0, not_(not_(slow_check))), True), deny("no"))]
    )
    assert [a.rule for a in await engine.aevaluate({"role": "writer", "x": 1})] == ["deep"]
    assert await engine.aevaluate({"role": "editor", "x": 1}) == []
    with pytest.raises(TypeError, match="async"):
        engine.evaluate({"role": "writer", "x": 1})


def test_document_round_trip(tmp_path: Path) -> None:
    engine = PolicyEngine.from_dict(DOC)
    assert [r.name for r in engine.rules] == ["expensive", "writes", "cheap-model", "always"]
    again = PolicyEngine.from_dict(engine.to_dict())
    assert again.to_dict() == engine.to_dict()
    facts = {"cost_usd": 9, "role": "writer", "turns": 4, "completed_roles": {"reviewer"}}
    assert again.evaluate(facts) == engine.evaluate(facts)
    assert [a.kind for a in engine.evaluate(facts)] == [
        "deny", "require_approval", "handoff", "abort", "switch_model", "warn", "emit",
    ]  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps(DOC))
    yaml = pytest.importorskip("yaml")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(DOC))
    (tmp_path / "p.toml").write_text(
        '[[rules]]\nname = "r"\nwhen = { op = "gt", fact = "tokens", value = 10 }\n'
        'then = [{ action = "deny", reason = "big" }]\n'
    )
    for name in ("p.json", "p.yaml"):
        assert PolicyEngine.from_file(tmp_path / name).to_dict() == engine.to_dict()
    toml_engine = PolicyEngine.from_file(tmp_path / "p.toml")
    assert toml_engine.evaluate({"tokens": 11}) == [Action("deny", "big", "r")]


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"rules": [{"name": "x", "then": [{"action": "deny"}]}]}, "rules[0].then[0].deny.reason"),
        (
            {
                "rules": [
                    {
                        "name": "x",
                        "when": {"op": "gt", "fact": "a"},
                        "then": [{"action": "warn", "message": "m"}],
                    }
                ]
            },
            "rules[0].when.gt.value",
        ),
        (
            {
                "rules": [
                    {
                        "name": "x",
                        "when": {"op": "all", "conditions": [{"op": "between"}]},
                        "then": [{"action": "emit", "event": "e"}],
                    }
                ]
            },
            "rules[0].when.all.conditions[0]",
        ),
        ({"rules": [{"name": "x", "then": [{"action": "explode"}]}]}, "rules[0].then[0]"),
        ({"rules": [{"then": [{"action": "emit", "event": "e"}]}]}, "rules[0].name"),
        ({"rule": []}, "rules"),
    ],
)
def test_malformed_documents_name_the_path(doc: dict[str, Any], path: str) -> None:
    with pytest.raises(DocumentError) as info:
        PolicyEngine.from_dict(doc)
    assert info.value.path == path
    assert path in str(info.value)


def test_custom_conditions_cannot_be_written() -> None:
    engine = PolicyEngine([Rule("custom", lambda facts: True, warn("x"))])
    with pytest.raises(TypeError, match="cannot be written"):
        engine.to_dict()


def test_string_thresholds_compare_as_numbers_against_numeric_facts() -> None:
    from decimal import Decimal

    rule = Rule("costly", fact("cost_usd") > "0.015", [warn("over")])
    engine = PolicyEngine([rule])
    assert [a.kind for a in engine.evaluate({"cost_usd": Decimal("0.02")})] == ["warn"]
    assert engine.evaluate({"cost_usd": 0.01}) == []


def test_incomparable_types_never_match_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    engine = PolicyEngine([Rule("odd", fact("model") > 3, [warn("x")])])
    with caplog.at_level("WARNING", logger="agentmw.policy"):
        assert engine.evaluate({"model": "gpt-4o"}) == []
        assert engine.evaluate({"model": "gpt-4o"}) == []
    warnings = [r for r in caplog.records if "never matches" in r.getMessage()]
    assert len(warnings) == 1
