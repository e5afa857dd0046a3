"""`AgentRegistry`: lookups by id, role and project; finished sessions are bounded."""

from __future__ import annotations

import pytest

from agentmw import Agent
from agentmw.core import AgentRegistry, default_registry


def test_lookups() -> None:
    registry = AgentRegistry()
    writer = Agent("writer", project_id="p1", registry=registry)
    editor = Agent("editor", project_id="p2", registry=registry)
    with writer.session() as w:
        assert registry.get(w.id) is w
        assert registry.active() == [w]
        assert registry.finished() == []
        with editor.session() as e:
            assert registry.by_role("editor") == [e]
            assert registry.by_project("p1") == [w]
            assert len(registry) == 2
    assert registry.active() == []
    assert registry.finished() == [e, w]
    assert registry.get(w.id) is w
    assert registry.get("nope") is None
    registry.clear()
    assert len(registry) == 0


def test_finished_sessions_are_bounded() -> None:
    registry = AgentRegistry(max_finished=3)
    agent = Agent("a", registry=registry)
    sessions = []
    for _ in range(5):
        with agent.session() as session:
            sessions.append(session)
    assert registry.finished() == sessions[2:]
    assert registry.get(sessions[0].id) is None
    assert len(registry) == 3


def test_zero_keeps_no_finished_sessions() -> None:
    registry = AgentRegistry(max_finished=0)
    with Agent("a", registry=registry).session():
        assert len(registry) == 1
    assert len(registry) == 0


@pytest.mark.parametrize(
    ("bad", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError)]
)
def test_max_finished_is_validated(bad: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_finished"):
        AgentRegistry(max_finished=bad)  # type: ignore[arg-type]


def test_default_registry_is_used_by_default() -> None:
    with Agent("a").session() as session:
        assert default_registry().get(session.id) is session


def test_sessions_register_and_finish_through_public_methods() -> None:
    registry = AgentRegistry(max_finished=1)
    session = Agent("a", registry=registry).session()
    registry.register(session)
    assert registry.active() == [session]
    registry.mark_finished(session)
    assert (registry.active(), registry.finished()) == ([], [session])
