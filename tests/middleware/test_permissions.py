"""Permissions: deny-first matrix, modes, unknown roles, documents, and the layer (sync/async)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentmw import Agent, PermissionDeniedError, Stack
from agentmw.errors import DocumentError
from agentmw.middleware import Permissions
from agentmw.permissions import PermissionMode, PermissionPolicy, RolePermissions
from agentmw.testing import capture_events

FULL = PermissionMode.FULL_ACCESS
POLICY = PermissionPolicy(
    {
        "writer": RolePermissions(allow=("fs.*", "search"), deny=("fs.delete*",)),
        "reader": RolePermissions(allow=("*",), mode=PermissionMode.READ_ONLY),
        "admin": RolePermissions(mode=FULL),
        "none": RolePermissions(allow=()),
    },
    tool_modes={"write_file": FULL, "fs.write*": PermissionMode.WORKSPACE_WRITE},
)


@pytest.mark.parametrize(
    ("role", "tool", "allowed"),
    [
        ("writer", "fs.read", True),
        ("writer", "FS.Read", True),  # case-insensitive
        ("writer", "fs.delete", False),  # deny beats a matching allow
        ("writer", "FS.DELETE_ALL", False),
        ("writer", "search", True),
        ("writer", "shell", False),  # no allow pattern
        ("reader", "lookup", True),
        ("reader", "write_file", False),  # mode below the tool's requirement
        ("reader", "fs.write_text", False),
        ("admin", "write_file", True),
        ("none", "anything", False),
        ("stranger", "search", False),  # unknown role: deny by default
        (None, "search", False),
    ],
)
def test_deny_first_matrix(role: str | None, tool: str, allowed: bool) -> None:
    decision = POLICY.authorize(role, tool)
    assert decision.allowed is allowed
    assert decision.reason


def test_reasons_name_the_rule() -> None:
    assert "fs.delete*" in POLICY.authorize("writer", "fs.delete").reason
    assert "full_access" in POLICY.authorize("reader", "write_file").reason


def test_unknown_role_allow() -> None:
    open_policy = PermissionPolicy({}, unknown_role="allow")
    assert open_policy.authorize("anyone", "x").allowed
    with pytest.raises(ValueError, match="unknown_role"):
        PermissionPolicy({}, unknown_role="maybe")


def test_filter_tools_keeps_order_and_shapes() -> None:
    def search() -> None: ...

    tools = [
        "fs.read",
        {"type": "function", "function": {"name": "fs.delete"}},
        {"name": "shell"},
        search,
    ]
    assert POLICY.filter_tools("writer", tools) == ["fs.read", search]


def test_from_dict_and_files(tmp_path: Path) -> None:
    doc = {
        "roles": {"writer": {"allow": ["fs.*"], "deny": ["fs.rm"], "mode": "WORKSPACE_WRITE"}},
        "tool_modes": {"fs.format": "full_access"},
    }
    policy = PermissionPolicy.from_dict(doc)
    assert policy.authorize("writer", "fs.read").allowed
    assert not policy.authorize("writer", "fs.rm").allowed
    assert not policy.authorize("writer", "fs.format").allowed
    (tmp_path / "p.json").write_text(json.dumps(doc))
    (tmp_path / "p.toml").write_text(
        '[roles.writer]\nallow = ["fs.*"]\ndeny = ["fs.rm"]\n'
        '[tool_modes]\n"fs.format" = "full_access"\n'
    )
    (tmp_path / "p.yaml").write_text("roles:\n  writer:\n    allow: ['fs.*']\n    deny: [fs.rm]\n")
    for name in ("p.json", "p.toml", "p.yaml"):
        loaded = PermissionPolicy.from_file(tmp_path / name)
        assert not loaded.authorize("writer", "fs.rm").allowed
        assert loaded.authorize("writer", "fs.ls").allowed


def test_invalid_document_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as info:
        PermissionPolicy.from_dict({"roles": {"writer": {"mode": "god"}}})
    assert info.value.path == "roles.writer.mode"
    with pytest.raises(DocumentError) as info:
        PermissionPolicy.from_dict({"roles": {"writer": {"alow": ["x"]}}})
    assert info.value.path == "roles.writer.alow"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DocumentError):
        PermissionPolicy.from_file(tmp_path / "bad.json")


def test_layer_only_applies_to_tools() -> None:
    assert Permissions(POLICY).kinds == frozenset({"tool"})
    with pytest.raises(TypeError, match="PermissionPolicy"):
        Permissions({"writer": {}})  # type: ignore[arg-type]


async def test_denied_tool_is_never_called(mode: str) -> None:
    calls: list[str] = []

    def delete(path: str) -> str:
        calls.append(path)
        return "deleted"

    agent = Agent("writer", stack=Stack([Permissions(POLICY)]))
    with capture_events() as events:
        if mode == "sync":
            with agent.session() as session:
                assert session.run_tool("fs.read", lambda: "ok") == "ok"
                with pytest.raises(PermissionDeniedError) as info:
                    session.run_tool("fs.delete", delete, "/etc")
        else:
            async with agent.session() as session:
                assert await session.arun_tool("fs.read", lambda: "ok") == "ok"
                with pytest.raises(PermissionDeniedError) as info:
                    await session.arun_tool("fs.delete", delete, "/etc")
    assert calls == []
    assert (info.value.role, info.value.tool) == ("writer", "fs.delete")
    blocked = events.named("tool.blocked")
    assert len(blocked) == 1
    assert blocked[0].data["kind"] == "permission"
    assert blocked[0].tool == "fs.delete"
