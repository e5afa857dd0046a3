"""The installed version, read from the package metadata (`version` in pyproject.toml).

Read on first use: `importlib.metadata` costs more than all of `import agentmw`.
"""

from __future__ import annotations

from functools import cache

__all__: list[str] = []


@cache
def version() -> str:
    """agentmw's version, as installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("agentmw")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "0.0.0+unknown"
