"""Tool permissions per role: deny-first glob patterns and permission modes."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, field_validator

from agentmw._validate import check_choice
from agentmw.documents import load_document, validate_document

__all__ = [
    "PermissionDecision",
    "PermissionMode",
    "PermissionPolicy",
    "RolePermissions",
]

T = TypeVar("T")
UNKNOWN_ROLE = ("deny", "allow")


class PermissionMode(IntEnum):
    """How much a role may change: READ_ONLY < WORKSPACE_WRITE < FULL_ACCESS."""

    READ_ONLY = 1
    WORKSPACE_WRITE = 2
    FULL_ACCESS = 3

    @classmethod
    def parse(cls, value: Any, argument: str = "mode") -> PermissionMode:
        """A mode from itself, its name (any case) or its number; errors name `argument`."""
        if isinstance(value, cls):
            return value
        allowed = ", ".join(m.name.lower() for m in cls)
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            if value in cls._value2member_map_:
                return cls(value)
        else:
            kind = type(value).__name__
            raise TypeError(f"{argument} must be a PermissionMode, its name or number; got {kind}")
        raise ValueError(f"{argument} must be one of {allowed}; got {value!r}")


@dataclass(frozen=True, slots=True)
class PermissionDecision:
    """The answer of `PermissionPolicy.authorize`: allowed or not, and why."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _compile(patterns: Iterable[str], what: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    out = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise ValueError(f"{what} patterns must be non-blank strings, got {pattern!r}")
        out.append((pattern, re.compile(fnmatch.translate(pattern.lower()))))
    return tuple(out)


@dataclass(frozen=True, slots=True, init=False)
class RolePermissions:
    """What one role may call.

    Args:
        allow: shell-style globs (case-insensitive) of tools the role may call.
        deny: globs of tools it may never call; any matching deny beats every allow.
        mode: the role's permission mode; None means tool mode requirements do not apply.
    """

    allow: tuple[str, ...]
    deny: tuple[str, ...]
    mode: PermissionMode | None
    _allow: tuple[tuple[str, re.Pattern[str]], ...]
    _deny: tuple[tuple[str, re.Pattern[str]], ...]

    def __init__(
        self,
        allow: Iterable[str] = ("*",),
        deny: Iterable[str] = (),
        mode: PermissionMode | str | None = None,
    ) -> None:
        if isinstance(allow, str) or isinstance(deny, str):
            raise TypeError("allow and deny take a sequence of patterns, not one string")
        object.__setattr__(self, "allow", tuple(allow))
        object.__setattr__(self, "deny", tuple(deny))
        object.__setattr__(self, "mode", None if mode is None else PermissionMode.parse(mode))
        object.__setattr__(self, "_allow", _compile(self.allow, "allow"))
        object.__setattr__(self, "_deny", _compile(self.deny, "deny"))


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-blank string")
    return value


# A role name or tool glob as documents write it: a non-blank string (never a number or bool).
_Pattern = Annotated[StrictStr, AfterValidator(_non_blank)]


class _RoleDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allow: list[_Pattern] = Field(default_factory=lambda: ["*"])
    deny: list[_Pattern] = Field(default_factory=list)
    mode: Literal["read_only", "workspace_write", "full_access"] | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class _PolicyDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: dict[_Pattern, _RoleDoc]
    unknown_role: Literal["deny", "allow"] = "deny"
    tool_modes: dict[_Pattern, Literal["read_only", "workspace_write", "full_access"]] = Field(
        default_factory=dict
    )

    @field_validator("tool_modes", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v.lower() if isinstance(v, str) else v for k, v in value.items()}
        return value


class PermissionPolicy:
    """Which role may call which tool. Deny-first; immutable; thread-safe.

    Args:
        roles: role name -> `RolePermissions`.
        unknown_role: "deny" (default) or "allow" for roles not in `roles`.
        tool_modes: tool glob -> the `PermissionMode` a role needs to call it.
    """

    def __init__(
        self,
        roles: Mapping[str, RolePermissions],
        *,
        unknown_role: str = "deny",
        tool_modes: Mapping[str, PermissionMode | str] | None = None,
    ) -> None:
        check_choice("unknown_role", unknown_role, UNKNOWN_ROLE)
        if not isinstance(roles, Mapping):
            kind = type(roles).__name__
            raise TypeError(f"roles must be a mapping of role -> RolePermissions, got {kind}")
        if tool_modes is not None and not isinstance(tool_modes, Mapping):
            kind = type(tool_modes).__name__
            raise TypeError(f"tool_modes must be a mapping of tool glob -> mode, got {kind}")
        for role, perms in roles.items():
            if not isinstance(perms, RolePermissions):
                raise TypeError(f"roles[{role!r}] must be a RolePermissions")
        self.roles: dict[str, RolePermissions] = dict(roles)
        self.unknown_role = unknown_role
        self.tool_modes = {
            k: PermissionMode.parse(v, f"tool_modes[{k!r}]") for k, v in (tool_modes or {}).items()
        }
        self._tool_modes = tuple(
            (pattern, rx, self.tool_modes[pattern])
            for pattern, rx in _compile(self.tool_modes, "tool_modes")
        )
        self._cache: dict[tuple[str | None, str], PermissionDecision] = {}

    def required_mode(self, tool: str) -> PermissionMode | None:
        """The highest mode any `tool_modes` pattern matching `tool` requires."""
        lowered = tool.lower()
        needed = [mode for _, rx, mode in self._tool_modes if rx.match(lowered)]
        return max(needed) if needed else None

    def authorize(self, role: str | None, tool: str) -> PermissionDecision:
        """May `role` call `tool`? Deny patterns first, then the mode, then allow patterns."""
        key = (role, tool)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._decide(role, tool)
        return cached

    def _decide(self, role: str | None, tool: str) -> PermissionDecision:
        perms = self.roles.get(role) if role is not None else None
        if perms is None:
            allowed = self.unknown_role == "allow"
            return PermissionDecision(allowed, f"unknown role ({self.unknown_role})")
        lowered = tool.lower()
        for pattern, rx in perms._deny:
            if rx.match(lowered):
                return PermissionDecision(False, f"denied by pattern {pattern!r}")
        needed = self.required_mode(tool)
        if needed is not None and perms.mode is not None and perms.mode < needed:
            return PermissionDecision(
                False, f"needs mode {needed.name.lower()}, role has {perms.mode.name.lower()}"
            )
        for pattern, rx in perms._allow:
            if rx.match(lowered):
                return PermissionDecision(True, f"allowed by pattern {pattern!r}")
        return PermissionDecision(False, "no allow pattern matches")

    def filter_tools(self, role: str | None, tools: Iterable[T]) -> list[T]:
        """The tools `role` may call, in order: names, OpenAI/Anthropic tool specs or functions."""
        return [t for t in tools if self.authorize(role, tool_name(t)).allowed]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PermissionPolicy:
        """Build a policy from `{"roles": {...}, "unknown_role": ..., "tool_modes": {...}}`.

        Raises:
            DocumentError: the document is malformed; `path` names the bad field.
        """
        return cls._from_document(data, "permission policy")

    @classmethod
    def _from_document(cls, data: Any, what: str) -> PermissionPolicy:
        doc = validate_document(_PolicyDoc, data, what)
        roles = {name: RolePermissions(r.allow, r.deny, r.mode) for name, r in doc.roles.items()}
        return cls(roles, unknown_role=doc.unknown_role, tool_modes=dict(doc.tool_modes))

    @classmethod
    def from_file(cls, path: str | Path) -> PermissionPolicy:
        """`from_dict` on a JSON, TOML or YAML file; errors name the file."""
        data = load_document(path, "permission policy")
        return cls._from_document(data, f"permission policy {path}")

    def __repr__(self) -> str:
        return f"PermissionPolicy(roles={sorted(self.roles)!r}, unknown_role={self.unknown_role!r})"


def tool_name(tool: Any) -> str:
    """The name of a tool given as a name, an OpenAI/Anthropic tool spec, or a callable."""
    if isinstance(tool, str):
        return tool
    if isinstance(tool, Mapping):
        function = tool.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return str(function["name"])
        if isinstance(tool.get("name"), str):
            return str(tool["name"])
    name = getattr(tool, "name", None) or getattr(tool, "__name__", None)
    if isinstance(name, str):
        return name
    raise TypeError(f"cannot tell the name of tool {tool!r}")
