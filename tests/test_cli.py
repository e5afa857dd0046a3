"""The `agentmw` command line on real sink and checkpoint files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentmw import Agent, Usage
from agentmw.cli import main
from agentmw.middleware import Checkpoint
from agentmw.pricing import PricingTable
from agentmw.stores import SqliteEventSink, SqliteSaver, SqliteUsageSink
from agentmw.stores._sqlite_saver import read_steps

PRICES = {
    "model-a": {"input_per_million": 3, "output_per_million": 15},
    "model-b": {"input_per_million": 1, "output_per_million": 2},
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


@pytest.fixture
def run_db(tmp_path: Path) -> tuple[Path, str]:
    """One file holding the events, usage and checkpoints of a real checkpointed session."""
    db = tmp_path / "run.db"
    events, usage, saver = SqliteEventSink(db), SqliteUsageSink(db), SqliteSaver(db)
    agent = Agent(
        "writer",
        stack=[Checkpoint(saver)],
        event_sink=events,
        usage_sink=usage,
        pricing=PricingTable(PRICES),
    )
    with agent.session(thread_id="t-1") as s:
        s.run_turn(lambda: "x", model="model-a", usage=Usage(input_tokens=1000, output_tokens=200))
        s.run_tool("search", lambda q: q, "hi")
        s.run_turn(lambda: "y", model="model-b", usage=Usage(input_tokens=500, output_tokens=100))
        s.run_turn(lambda: "z", model="model-a", usage=Usage(input_tokens=2000, output_tokens=0))
    events.close()
    usage.close()
    saver.close()
    return db, s.id


def test_usage_table(capsys: pytest.CaptureFixture[str], run_db: tuple[Path, str]) -> None:
    code, out, err = run(capsys, "usage", str(run_db[0]))
    assert (code, err) == (0, "")
    assert lines(out) == [
        "MODEL    TURNS  INPUT TOKENS  OUTPUT TOKENS     COST",
        "-------  -----  ------------  -------------  -------",
        "model-a      2          3000            200    $0.01",
        "model-b      1           500            100  $0.0007",
        "TOTAL        3          3500            300    $0.01",
    ]


def test_events_of_a_real_session(
    capsys: pytest.CaptureFixture[str], run_db: tuple[Path, str]
) -> None:
    db, sid = run_db
    code, out, err = run(capsys, "events", str(db), "--session", sid)
    assert (code, err) == (0, "")
    rows = lines(out)
    assert rows[0].split() == ["AT", "(UTC)", "SESSION", "EVENT", "STEP", "MODEL/TOOL", "DETAIL"]
    names = [row.split()[3] for row in rows[2:]]
    assert names[0] == "agent.started"
    assert names[-1] == "agent.completed"
    assert names.count("checkpoint.saved") == 4
    assert all(sid in row for row in rows[2:])
    # Another session id selects nothing: only the header is printed.
    code, out, _ = run(capsys, "events", str(db), "--session", "nobody")
    assert code == 0
    assert len(lines(out)) == 2


def test_events_table_exact(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from agentmw import Event

    db = tmp_path / "events.db"
    sink = SqliteEventSink(db)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    sink.emit(Event("turn.started", session_id="s1", step=1, model="model-a", at=at))
    sink.emit(Event("tool.failed", session_id="s2", step=2, tool="fetch", failure_class="timeout"))
    sink.emit(Event("agent.completed", session_id="s1", detail="done", at=at))
    sink.close()
    code, out, _ = run(capsys, "events", str(db), "--session", "s1")
    assert code == 0
    assert lines(out) == [
        "AT (UTC)             SESSION  EVENT            STEP  MODEL/TOOL  DETAIL",
        "-------------------  -------  ---------------  ----  ----------  ------",
        "2026-01-02 03:04:05  s1       turn.started        1  model-a     -",
        "2026-01-02 03:04:05  s1       agent.completed     -  -           done",
    ]
    code, out, _ = run(capsys, "events", str(db))
    assert code == 0
    assert "tool.failed" in out
    assert "timeout" in out
    assert len(lines(out)) == 5


def test_threads_and_steps(capsys: pytest.CaptureFixture[str], run_db: tuple[Path, str]) -> None:
    db, sid = run_db
    conn = sqlite3.connect(db)
    steps = read_steps(conn, "t-1")
    updated = conn.execute("SELECT updated_at FROM agentmw_sessions").fetchone()[0]
    conn.close()
    stamp = datetime.fromisoformat(updated).strftime("%Y-%m-%d %H:%M:%S")
    code, out, err = run(capsys, "threads", str(db))
    assert (code, err) == (0, "")
    assert lines(out) == [
        f"THREAD  STEPS  STATE      LAST SESSION{' ' * 22}COST   UPDATED (UTC)",
        f"------  -----  ---------  {'-' * 32}  -----  -------------------",
        f"t-1         4  completed  {sid}  $0.01  {stamp}",
    ]
    code, out, err = run(capsys, "steps", str(db), "t-1")
    assert (code, err) == (0, "")
    done = [s.finished_at.strftime("%Y-%m-%d %H:%M:%S") for s in steps]
    assert lines(out) == [
        "STEP  KIND  NAME      STATUS     INPUT  OUTPUT     COST  FINISHED (UTC)",
        "----  ----  --------  ---------  -----  ------  -------  -------------------",
        f"   1  turn  <lambda>  completed   1000     200  $0.0060  {done[0]}",
        f"   2  tool  search    completed      0       0    $0.00  {done[1]}",
        f"   3  turn  <lambda>  completed    500     100  $0.0007  {done[2]}",
        f"   4  turn  <lambda>  completed   2000       0  $0.0060  {done[3]}",
    ]


def test_unknown_thread(capsys: pytest.CaptureFixture[str], run_db: tuple[Path, str]) -> None:
    code, out, err = run(capsys, "steps", str(run_db[0]), "nope")
    assert (code, out) == (1, "")
    assert err == f"agentmw: {run_db[0]}: no steps for thread 'nope'\n"


def test_missing_file_is_not_created(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    for argv in (["events", str(db)], ["usage", str(db)], ["threads", str(db)]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, "")
        assert err == f"agentmw: {db}: no such file\n"
    assert not db.exists()


def test_not_sqlite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("just some text, certainly not a database\n" * 20)
    before = db.read_bytes()
    code, out, err = run(capsys, "usage", str(db))
    assert (code, out, err) == (2, "", f"agentmw: {db}: not a SQLite database\n")
    assert db.read_bytes() == before


def test_foreign_sqlite_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE things (a)")
    conn.commit()
    conn.close()
    code, out, err = run(capsys, "threads", str(db))
    assert (code, out) == (2, "")
    assert err == f"agentmw: {db}: not an agentmw database (no agentmw_schema table)\n"


def test_command_needs_its_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sinks = tmp_path / "sinks.db"
    SqliteEventSink(sinks).close()
    SqliteUsageSink(sinks).close()
    code, _, err = run(capsys, "steps", str(sinks), "t-1")
    assert code == 2
    assert err == (
        f"agentmw: {sinks}: has no agentmw_checkpoints, agentmw_sessions table"
        " (this file holds: events, usage)\n"
    )
    checkpoints = tmp_path / "checkpoints.db"
    SqliteSaver(checkpoints).close()
    code, _, err = run(capsys, "events", str(checkpoints))
    assert code == 2
    assert err == (
        f"agentmw: {checkpoints}: has no agentmw_events table (this file holds: checkpoints)\n"
    )
    code, out, _ = run(capsys, "threads", str(checkpoints))
    assert code == 0
    assert len(lines(out)) == 2


def test_pricing_check_valid(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."model-a"]\ninput_per_million = 3\noutput_per_million = 15\n'
        'cache_read_per_million = "0.3"\n'
        '[models."b"]\ninput_per_million = 0.5\noutput_per_million = 1.5\n'
    )
    code, out, err = run(capsys, "pricing", "check", str(path))
    assert (code, err) == (0, "")
    assert lines(out) == [
        "MODEL    INPUT $/M  OUTPUT $/M  CACHE READ $/M  CACHE WRITE $/M",
        "-------  ---------  ----------  --------------  ---------------",
        "b              0.5         1.5               -                -",
        "model-a          3          15             0.3                -",
        f"{path}: ok, 2 model(s)",
    ]


def test_pricing_check_reports_every_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        '{"a": {"input_per_million": -1, "output_per_million": "x"},'
        ' "b": 3, "c": {"input_per_million": 1, "output_per_million": 2},'
        ' "d": {"input_per_million": 1, "output_per_million": 2, "typo": 1}}'
    )
    code, out, err = run(capsys, "pricing", "check", str(path))
    assert (code, out) == (1, "")
    assert lines(err) == [
        f"{path}: model 'a': field 'input_per_million': must be a finite number >= 0, got -1",
        f"{path}: model 'a': field 'output_per_million': must be a number >= 0, got 'x'",
        f"{path}: model 'b': expected a table of prices, got int",
        f"{path}: model 'd': field 'typo': unknown field; allowed: input_per_million, "
        "output_per_million, cache_read_per_million, cache_write_per_million",
        f"{path}: 4 error(s)",
    ]


def test_pricing_check_bad_syntax_and_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "prices.json"
    path.write_text("{not json")
    code, _, err = run(capsys, "pricing", "check", str(path))
    assert code == 1
    assert err.startswith(f"{path}: not valid JSON:")
    code, _, err = run(capsys, "pricing", "check", str(tmp_path / "none.json"))
    assert code == 1
    assert err.startswith(f"{tmp_path / 'none.json'}: cannot read price file (FileNotFoundError)")


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "COMMAND" in err
    code, _, err = run(capsys, "steps", "only-db")
    assert code == 2
    assert "THREAD" in err


def test_console_script_help() -> None:
    script = Path(sys.executable).parent / "agentmw"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: agentmw")
    for command in ("events", "usage", "threads", "steps", "pricing"):
        assert command in proc.stdout


def test_python_dash_m(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentmw", "usage", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"agentmw: {tmp_path / 'x.db'}: no such file\n"
