"""Converting events and usage records to and from stored rows (shared by every sink)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from agentmw.events import Event, UsageRecord
from agentmw.stores._sink import UsageTotals
from agentmw.usage import USAGE_FIELDS, Usage


def utc(at: datetime) -> datetime:
    """`at` as an aware UTC datetime (a naive value is taken to be UTC already)."""
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    return at.astimezone(UTC)


def parse_at(value: datetime | str) -> datetime:
    return utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))


def dump_json(value: Any) -> str:
    # default=str: a sink must never fail on an odd value in `data`; it is stored as its str().
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def load_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def event_record(event: Event) -> dict[str, Any]:
    """`Event.as_dict()` with `at` normalized to UTC (the JSONL line format)."""
    out = event.as_dict()
    out["at"] = utc(event.at).isoformat()
    return out


def event_from_mapping(row: Mapping[str, Any]) -> Event:
    """Rebuild an `Event` from a stored row or JSON object (`data` as JSON text or a mapping)."""
    data = load_json(row.get("data")) or {}
    return Event(
        name=row["name"],
        session_id=row.get("session_id"),
        role=row.get("role"),
        phase=row.get("phase"),
        project_id=row.get("project_id"),
        step=row.get("step"),
        model=row.get("model"),
        tool=row.get("tool"),
        failure_class=row.get("failure_class"),
        detail=row.get("detail"),
        data=dict(data),
        at=parse_at(row["at"]),
    )


def usage_from_mapping(row: Mapping[str, Any]) -> UsageRecord:
    """Rebuild a `UsageRecord` from a stored row (`cost_usd` as TEXT or NUMERIC)."""
    return UsageRecord(
        session_id=row["session_id"],
        role=row["role"],
        model=row["model"],
        kind=row["kind"],
        name=row["name"],
        step=row["step"],
        usage=Usage(**{f: int(row[f]) for f in USAGE_FIELDS}),
        cost_usd=Decimal(row["cost_usd"]),
        project_id=row["project_id"],
        at=parse_at(row["at"]),
    )


def totals_from_groups(rows: Iterable[tuple[Any, ...]]) -> dict[str, UsageTotals]:
    """Per-model totals from `(model, turns, input_tokens, output_tokens, cost_usd)` groups.

    `cost_usd` arrives as exact text or NUMERIC and becomes a `Decimal`; a NULL model is
    reported as "unknown", like `UsageTracker`.
    """
    out: dict[str, UsageTotals] = {}
    for model, turns, inp, outp, cost in rows:
        key = model or "unknown"
        t = out.setdefault(
            key,
            UsageTotals(
                turns=0, input_tokens=0, output_tokens=0, total_tokens=0, cost_usd=Decimal(0)
            ),
        )
        t["turns"] += int(turns or 0)
        t["input_tokens"] += int(inp or 0)
        t["output_tokens"] += int(outp or 0)
        t["total_tokens"] = t["input_tokens"] + t["output_tokens"]
        t["cost_usd"] += Decimal(cost if cost is not None else 0)
    return out
