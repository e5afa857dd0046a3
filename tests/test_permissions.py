"""Permission documents: one DocumentError naming the file and each bad part."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentmw.errors import DocumentError
from agentmw.permissions import PermissionPolicy


@pytest.mark.parametrize(
    ("doc", "path", "problem"),
    [
        ({"roles": {"w": {"allow": [""]}}}, "roles.w.allow[0]", "must be a non-blank string"),
        ({"roles": {"w": {"deny": [3]}}}, "roles.w.deny[0]", "Input should be a valid string"),
        ({"roles": {" ": {}}}, "roles[' '] (the key)", "must be a non-blank string"),
        ({"roles": {}, "tool_modes": {"": "read_only"}}, "tool_modes[''] (the key)", "non-blank"),
        ({"roles": {"w": {"mode": "root"}}}, "roles.w.mode", "Input should be"),
        ({"roles": {}, "unknown_role": "maybe"}, "unknown_role", "Input should be 'deny'"),
    ],
)
def test_a_bad_part_is_a_document_error_with_its_path(
    doc: dict[str, Any], path: str, problem: str
) -> None:
    with pytest.raises(DocumentError) as info:
        PermissionPolicy.from_dict(doc)
    assert info.value.path == path
    assert problem in str(info.value)
    assert str(info.value).startswith("invalid permission policy: ")


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "perms.json"
    path.write_text(json.dumps({"roles": {"w": {"allow": [""]}}}))
    with pytest.raises(DocumentError, match=rf"^invalid permission policy {path}: roles\.w"):
        PermissionPolicy.from_file(path)
    deep = tmp_path / "deep.json"
    deep.write_text('{"roles": ' + "[" * 50_000 + "]" * 50_000 + "}")
    with pytest.raises(DocumentError, match=rf"permission policy {deep}: .*nested deeper than 64"):
        PermissionPolicy.from_file(deep)
    odd = tmp_path / "perms.ini"
    odd.write_text("x")
    with pytest.raises(DocumentError, match=r"unsupported suffix '\.ini'"):
        PermissionPolicy.from_file(odd)
