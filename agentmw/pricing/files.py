"""Price files: JSON or TOML tables of model -> rates, validated whole before anything is used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentmw.pricing.model import ModelPricing, entry_problems

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["check_pricing_file", "read_pricing_file"]


def read_pricing_file(path: str | Path) -> dict[str, ModelPricing]:
    """Parse and validate a whole price file; nothing is returned unless every entry is valid.

    The file maps model names to tables of `ModelPricing` fields, optionally under a top-level
    `models` key. `.toml` files are TOML, anything else JSON.

    Raises:
        ValueError: unreadable file, not UTF-8, bad syntax, nested too deeply, or an invalid
            entry; the message names the file, the model and the field (every problem, one per
            line).
    """
    prices, errors = check_pricing_file(path)
    if errors:
        raise ValueError("\n".join(errors))
    return prices


def _parse(file: Path) -> tuple[Any, str | None]:
    import json  # only when a file is read: `import agentmw` loads neither parser
    import tomllib

    try:
        raw = file.read_bytes()
    except OSError as exc:
        return None, f"cannot read price file ({type(exc).__name__})"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (byte {exc.start})"
    kind = "TOML" if file.suffix == ".toml" else "JSON"
    try:
        return (tomllib.loads(text) if kind == "TOML" else json.loads(text)), None
    except RecursionError:
        return None, f"not valid {kind}: nested too deeply to parse"
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, f"not valid {kind}: {exc}"


def check_pricing_file(path: str | Path) -> tuple[dict[str, ModelPricing], list[str]]:
    """Validate a price file and collect every problem instead of stopping at the first.

    Returns:
        The valid entries, and one message per problem naming the file, model and field (the
        same wording `ModelPricing(...)` uses for a bad argument).
    """
    from pathlib import Path  # only when a file is read (pathlib is slow to import)

    file = Path(path)
    data, problem = _parse(file)
    if problem is not None:
        return {}, [f"{file}: {problem}"]
    if isinstance(data, dict) and set(data) == {"models"}:
        data = data["models"]
    if not isinstance(data, dict):
        return {}, [f"{file}: expected a table of model -> prices, got {type(data).__name__}"]
    out: dict[str, ModelPricing] = {}
    errors: list[str] = []
    for model, entry in data.items():
        problems = entry_problems(entry)
        if problems:
            errors += [f"{file}: model {model!r}: {p}" for p in problems]
            continue
        out[model] = ModelPricing.from_dict(entry)
    return out, errors
