"""`Handoff`: validation, deep copy, and `Session.handoff_to` into the target's session."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agentmw import Agent, AgentState, Handoff, SessionClosedError


def test_validation() -> None:
    with pytest.raises(ValidationError, match="reason"):
        Handoff(source_role="a", target_role="b", reason="  ")
    with pytest.raises(ValidationError, match="JSON-serializable"):
        Handoff(source_role="a", target_role="b", reason="r", context={"x": object()})
    with pytest.raises(ValidationError, match="extra"):
        Handoff(source_role="a", target_role="b", reason="r", bogus=1)  # type: ignore[call-arg]
    handoff = Handoff(source_role="a", target_role="b", reason="r", context=None)  # type: ignore[arg-type]
    assert handoff.context == {}
    with pytest.raises(ValidationError):
        handoff.reason = "other"  # type: ignore[misc]


def test_context_is_deep_copied() -> None:
    context: dict[str, Any] = {"draft": {"paragraphs": ["one"]}}
    handoff = Handoff(source_role="a", target_role="b", reason="r", context=context)
    context["draft"]["paragraphs"].append("two")
    assert handoff.context == {"draft": {"paragraphs": ["one"]}}
    assert Handoff.model_validate_json(handoff.model_dump_json()) == handoff


async def test_handoff_to_completes_source_and_starts_target(mode: str) -> None:
    writer = Agent("writer", project_id="p1")
    editor = Agent("editor", project_id="p1")
    context: dict[str, Any] = {"draft": "v1", "notes": ["tighten intro"]}
    with writer.session() as source:
        handoff = source.handoff_to(editor, reason="draft ready", context=context)
        assert source.state is AgentState.COMPLETED
        with pytest.raises(SessionClosedError):
            source.run_tool("t", lambda: None)
    context["notes"].append("mutated")
    assert handoff.source_role == "writer"
    assert handoff.target_role == "editor"
    assert handoff.project_id == "p1"
    assert handoff.source_session_id == source.id
    assert handoff.created_at.tzinfo is not None
    assert [e.name for e in source.events][-2:] == ["handoff.created", "agent.completed"]
    assert source.events[-2].data == {"target_role": "editor"}

    target = editor.session(handoff=handoff)
    if mode == "sync":
        with target:
            assert target.handoff == {"draft": "v1", "notes": ["tighten intro"]}
    else:
        async with target:
            assert target.handoff == {"draft": "v1", "notes": ["tighten intro"]}
    assert target.received_handoff is handoff
    assert target.events[0].data == {"handoff_from": "writer"}


def test_handoff_to_a_role_name_and_without_context() -> None:
    with Agent("writer").session() as session:
        handoff = session.handoff_to("reviewer", reason="check")
    assert (handoff.target_role, handoff.context) == ("reviewer", {})
    assert Agent("reviewer").session(handoff=handoff).handoff == {}


def test_invalid_handoff_leaves_the_session_running() -> None:
    with Agent("writer").session() as session:
        with pytest.raises(ValidationError):
            session.handoff_to("editor", reason="")
        assert session.state is AgentState.RUNNING
