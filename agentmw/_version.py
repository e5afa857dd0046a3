"""The installed version, read from the package metadata (`version` in pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__: list[str] = []

try:
    __version__ = version("agentmw")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0.0.0+unknown"
