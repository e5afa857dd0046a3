"""Loading configuration documents (JSON, TOML, YAML) and validating them with pydantic."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentmw.errors import DocumentError

__all__ = ["DocumentError"]

M = TypeVar("M", bound=BaseModel)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validate_document(model: type[M], data: Any, what: str) -> M:
    """Validate `data` as `model`; problems become a `DocumentError` naming each bad path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [(_format_loc(e["loc"]), e["msg"]) for e in exc.errors()]
        raise DocumentError(what, problems) from None


def load_document(path: str | Path) -> Any:
    """Parse a JSON, TOML or YAML file (chosen by its suffix) into plain data.

    Raises:
        DocumentError: the file does not parse, or its suffix is not supported.
        ImportError: a YAML file and PyYAML is not installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ImportError(
                    "reading YAML documents needs the 'pyyaml' package (pip install pyyaml)"
                ) from None
            return yaml.safe_load(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise DocumentError(str(path), [("", f"does not parse ({type(exc).__name__})")]) from None
    except Exception as exc:  # yaml.YAMLError is not a ValueError
        if type(exc).__module__.startswith("yaml"):
            raise DocumentError(
                str(path), [("", f"does not parse ({type(exc).__name__})")]
            ) from None
        raise
    raise DocumentError(
        str(path), [("", f"unsupported suffix {suffix!r}; use .json, .toml or .yaml")]
    )
