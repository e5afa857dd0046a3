"""PostgreSQL event and usage sinks against the real server (`pg_conninfo` fixture)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from agentmw import Agent, Usage
from agentmw.stores import PostgresEventSink, PostgresUsageSink, SinkSchemaError
from agentmw.testing import ScriptedModel

from .test_sinks import make_events, make_usage

pytestmark = pytest.mark.services


@pytest.fixture
def prefix(pg_conninfo: str) -> Iterator[str]:
    """A table prefix unique to this test; its tables are dropped afterwards."""
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        for suffix in ("events", "usage", "schema"):
            conn.execute(f"DROP TABLE IF EXISTS {name}_{suffix}")


def test_events_write_close_reopen_and_replay(pg_conninfo: str, prefix: str) -> None:
    events = make_events(25) + make_events(3, session_id="s2")
    sink = PostgresEventSink(pg_conninfo, table_prefix=prefix, batch_size=7)
    for e in events:
        sink.emit(e)
    sink.close()
    assert (sink.written, sink.dropped, sink.write_errors) == (28, 0, 0)

    reopened = PostgresEventSink(pg_conninfo, table_prefix=prefix)
    assert reopened.replay() == events
    assert reopened.replay("s2") == events[25:]
    reopened.close()


def test_usage_replay_and_exact_totals(pg_conninfo: str, prefix: str) -> None:
    records = [make_usage("m1", i, "0.1") for i in range(3)] + [make_usage(None, 9, "0.000001")]
    with PostgresUsageSink(pg_conninfo, table_prefix=prefix) as sink:
        for r in records:
            sink.record(r)
    reopened = PostgresUsageSink(pg_conninfo, table_prefix=prefix)
    assert reopened.replay() == records
    totals = reopened.totals()
    assert totals["m1"] == {
        "turns": 3,
        "input_tokens": 30,
        "output_tokens": 15,
        "total_tokens": 45,
        "cost_usd": Decimal("0.3"),
    }
    assert totals["unknown"]["cost_usd"] == Decimal("0.000001")
    reopened.close()


def test_setup_is_idempotent_and_rejects_foreign_tables(pg_conninfo: str, prefix: str) -> None:
    sink = PostgresEventSink(pg_conninfo, table_prefix=prefix)
    sink.setup()
    sink.setup()
    assert sink.replay() == []
    sink.close()
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {prefix}_usage (x int)")
    foreign = PostgresUsageSink(pg_conninfo, table_prefix=prefix)
    with pytest.raises(SinkSchemaError, match="not created by agentmw"):
        foreign.setup()
    foreign.close()
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(f"UPDATE {prefix}_schema SET version = 99")
    mismatched = PostgresEventSink(pg_conninfo, table_prefix=prefix)
    with pytest.raises(SinkSchemaError, match="schema version 99"):
        mismatched.replay()
    mismatched.close()


async def test_sessions_write_through_postgres_sinks(
    pg_conninfo: str, prefix: str, mode: str
) -> None:
    events = PostgresEventSink(pg_conninfo, table_prefix=prefix)
    usage = PostgresUsageSink(pg_conninfo, table_prefix=prefix)
    agent = Agent("writer", event_sink=events, usage_sink=usage)
    model = ScriptedModel(["one", "two"], model="m1")
    if mode == "sync":
        with agent.session() as session:
            session.run_turn(model, model="m1", usage=Usage(3, 2))
            session.run_turn(model, model="m1", usage=Usage(3, 2))
        stored = events.replay(session.id)
        totals = usage.totals()
    else:
        async with agent.session() as session:
            await session.arun_turn(model.acall, model="m1", usage=Usage(3, 2))
            await session.arun_turn(model.acall, model="m1", usage=Usage(3, 2))
        stored = await events.areplay(session.id)
        totals = await usage.atotals()
    assert [e.name for e in stored] == [e.name for e in session.events]
    assert totals["m1"]["turns"] == 2
    assert totals["m1"]["total_tokens"] == 10
    events.close()
    usage.close()


def test_unreachable_server_is_an_isolated_write_error(prefix: str) -> None:
    sink = PostgresEventSink("host=127.0.0.1 port=1 connect_timeout=2", table_prefix=prefix)
    for e in make_events(3):
        sink.emit(e)
    assert sink.flush(timeout=10)
    assert sink.write_errors == 1
    assert sink.dropped == 3
    sink.close()


def test_table_prefix_is_validated(pg_conninfo: str) -> None:
    with pytest.raises(ValueError, match="table_prefix"):
        PostgresEventSink(pg_conninfo, table_prefix="bad; DROP TABLE x")
