"""Reading configuration documents (JSON, TOML, YAML) and validating them with pydantic.

Every loader reports a bad document the same way: one `DocumentError` naming the document (its
file, when it has one) and the path of each bad part, raised before anything is applied.
"""

from __future__ import annotations

import contextlib
import gc
import json
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentmw.errors import DocumentError

__all__: list[str] = []  # internal: the policy and permission loaders use these

M = TypeVar("M", bound=BaseModel)

# Deeper than any real document; a deeper one is an attack or a bug, refused before the parser
# or the validator can hit Python's recursion limit.
MAX_DEPTH = 64


@contextlib.contextmanager
def bulk_load() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large document becomes objects.

    Building tens of thousands of small objects triggers a full collection again and again (half
    the loading time of a 20,000-rule policy); nothing built here forms a reference cycle.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def format_path(loc: tuple[int | str, ...]) -> str:
    """`("rules", 0, "then")` as `rules[0].then`; keys that are not names as `roles['a b']`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic's marker: the problem is the mapping key itself
            out += " (the key)"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _children(value: Any) -> Iterator[tuple[int | str, Any]]:
    if type(value) is dict or isinstance(value, Mapping):
        return ((str(k), v) for k, v in value.items())
    if type(value) is list:
        return enumerate(value)
    return iter(())


def _too_deep_at(data: Any) -> tuple[int | str, ...]:
    # Only on the error path: follow the first branch that goes too deep, keeping its path.
    loc: tuple[int | str, ...] = ()
    stack = [(loc, data)]
    while stack:
        loc, value = stack.pop()
        if len(loc) >= MAX_DEPTH:
            return loc
        stack.extend(((*loc, key), child) for key, child in _children(value))
    return loc


def check_depth(data: Any, what: str) -> None:
    """Refuse a document nested deeper than `MAX_DEPTH` (never a `RecursionError`).

    Linear and iterative: documents with tens of thousands of entries check in milliseconds.
    """
    stack = [(data, 0)] if _nested(data) else []
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        if depth >= MAX_DEPTH:
            where = format_path(_too_deep_at(data))
            raise DocumentError(what, [(where, f"nested deeper than {MAX_DEPTH} levels")])
        for child in value.values() if type(value) is not list else value:
            if type(child) not in _LEAVES and _nested(child):
                push((child, depth + 1))


_LEAVES = frozenset({str, int, float, bool, type(None)})


def _nested(value: Any) -> bool:
    return type(value) is dict or type(value) is list or isinstance(value, Mapping)


def validate_document(model: type[M], data: Any, what: str, *, checked: bool = False) -> M:
    """Validate `data` as `model`; problems become a `DocumentError` naming each bad path.

    `checked=True` skips the depth check the caller already made.
    """
    if not checked:
        check_depth(data, what)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            (format_path(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors()
        ]
        raise DocumentError(what, problems) from None


def read_text(path: Path, what: str) -> str:
    """The file's text as UTF-8; an unreadable or undecodable file is a `DocumentError`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(what, [("", f"cannot be read ({type(exc).__name__})")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"is not valid UTF-8 (byte {exc.start})"
        raise DocumentError(what, [("", problem)]) from None


def parse_text(text: str, suffix: str, what: str) -> Any:
    """Parse JSON, TOML or YAML text (by `suffix`) into plain data, depth-checked."""
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ImportError(
                    "reading YAML documents needs PyYAML: pip install 'agentmw[yaml]'"
                ) from None
            data = yaml.safe_load(text)
        else:
            problem = f"unsupported suffix {suffix!r}; use .json, .toml, .yaml or .yml"
            raise DocumentError(what, [("", problem)])
    except RecursionError:
        raise DocumentError(what, [("", f"nested deeper than {MAX_DEPTH} levels")]) from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        if isinstance(exc, DocumentError):
            raise
        raise DocumentError(what, [("", f"does not parse ({type(exc).__name__})")]) from None
    except Exception as exc:  # yaml.YAMLError is not a ValueError
        if type(exc).__module__.startswith("yaml"):
            problem = f"does not parse ({type(exc).__name__})"
            raise DocumentError(what, [("", problem)]) from None
        raise
    check_depth(data, what)
    return data


def load_document(path: str | Path, what: str = "document") -> Any:
    """Read and parse a JSON, TOML or YAML file (chosen by its suffix) into plain data.

    Raises:
        DocumentError: the file cannot be read, is not UTF-8, does not parse, is nested too
            deeply, or has an unsupported suffix; the message names `what` and the file.
        ImportError: a YAML file and PyYAML is not installed.
    """
    file = Path(path)
    label = f"{what} {file}"
    return parse_text(read_text(file, label), file.suffix.lower(), label)
