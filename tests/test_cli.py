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
    keys = [s.idempotency_key for s in steps]
    assert lines(out) == [
        "STEP  KIND  NAME      STATUS     INPUT  OUTPUT     COST  FINISHED (UTC)       "
        "IDEMPOTENCY KEY",
        f"----  ----  --------  ---------  -----  ------  -------  -------------------  {'-' * 36}",
        f"   1  turn  <lambda>  completed   1000     200  $0.0060  {done[0]}  {keys[0]}",
        f"   2  tool  search    completed      0       0    $0.00  {done[1]}  {keys[1]}",
        f"   3  turn  <lambda>  completed    500     100  $0.0007  {done[2]}  {keys[2]}",
        f"   4  turn  <lambda>  completed   2000       0  $0.0060  {done[3]}  {keys[3]}",
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
    code, _, err = run(capsys, "steps")
    assert code == 2
    assert "DB" in err


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


class _Crash(BaseException):
    """The process dying mid-call (not an Exception: the step stays started)."""


@pytest.fixture
def in_flight_db(tmp_path: Path) -> Path:
    """A SqliteSaver file whose thread "pay-1" has step 2 in flight (a crash inside `charge`)."""
    db = tmp_path / "ck.db"
    saver = SqliteSaver(db)
    agent = Agent("w", stack=[Checkpoint(saver)])

    def charge(amount: int) -> str:
        raise _Crash

    def crashing_run() -> None:
        with agent.session(thread_id="pay-1") as s:
            s.run_tool("lookup", lambda q: q, "x")
            s.run_tool("charge", charge, 10)

    with pytest.raises(_Crash):
        crashing_run()
    saver.close()
    return db


def test_steps_without_a_thread_lists_the_steps_in_flight(
    capsys: pytest.CaptureFixture[str], in_flight_db: Path
) -> None:
    with sqlite3.connect(in_flight_db) as conn:
        (step,) = [s for s in read_steps(conn, "pay-1") if s.status == "started"]
    started = step.started_at.strftime("%Y-%m-%d %H:%M:%S")
    code, out, err = run(capsys, "steps", str(in_flight_db))
    assert (code, err) == (0, "")
    assert lines(out) == [
        f"THREAD  STEP  KIND  NAME    IDEMPOTENCY KEY{' ' * 23}STARTED (UTC)",
        f"------  ----  ----  ------  {'-' * 36}  -------------------",
        f"pay-1      2  tool  charge  {step.idempotency_key}  {started}",
        "1 step(s) in flight: resolve each with"
        " `agentmw steps resolve THREAD STEP --db DB --result JSON | --rerun`",
    ]
    code, out, _ = run(capsys, "steps", str(in_flight_db), "pay-1")
    assert code == 0
    assert lines(out)[3].split() == [
        "2", "tool", "charge", "started", "0", "0", "$0.00", "-", str(step.idempotency_key),
    ]  # fmt: skip


def test_steps_resolve_result_then_nothing_is_in_flight(
    capsys: pytest.CaptureFixture[str], in_flight_db: Path
) -> None:
    argv = ["steps", "resolve", "pay-1", "2", "--db", str(in_flight_db)]
    code, out, err = run(capsys, *argv, "--result", '{"charge": "ch_1"}')
    assert (code, err) == (0, "")
    assert out == "thread 'pay-1' step 2: completed; a resume replays it\n"
    with sqlite3.connect(in_flight_db) as conn:
        record = read_steps(conn, "pay-1")[1]
    assert (record.status, record.result) == ("completed", '{"charge":"ch_1"}')
    code, out, _ = run(capsys, "steps", str(in_flight_db))
    assert (code, out) == (0, f"{in_flight_db}: no steps in flight\n")
    # Resolving it again is refused: it is no longer in flight.
    code, out, err = run(capsys, *argv, "--rerun")
    assert (code, out) == (1, "")
    assert err == (
        f"agentmw: {in_flight_db}: step 2 of thread 'pay-1' is completed, not in flight"
        " (started): only a started step can be resolved\n"
    )


def test_steps_resolve_rerun(capsys: pytest.CaptureFixture[str], in_flight_db: Path) -> None:
    code, out, err = run(
        capsys, "steps", "resolve", "pay-1", "2", "--db", str(in_flight_db), "--rerun"
    )
    assert (code, err) == (0, "")
    with sqlite3.connect(in_flight_db) as conn:
        record = read_steps(conn, "pay-1")[1]
    assert record.status == "rerun"
    key = record.idempotency_key
    assert out == f"thread 'pay-1' step 2: a resume runs it again (idempotency key {key})\n"


def test_steps_resolve_refuses_bad_input(
    capsys: pytest.CaptureFixture[str], in_flight_db: Path, tmp_path: Path
) -> None:
    base = ["steps", "resolve", "pay-1", "2", "--db", str(in_flight_db)]
    code, _, err = run(capsys, *base, "--result", "{nope")
    assert code == 2
    assert err.startswith("agentmw: --result is not valid JSON (")
    code, _, err = run(capsys, *base)
    assert code == 2
    assert "one of the arguments --result --rerun is required" in err
    code, _, err = run(capsys, *base, "--rerun", "--result", "1")
    assert code == 2
    assert "not allowed with argument" in err
    code, _, err = run(capsys, "steps", "resolve", "pay-1", "2", "--rerun")
    assert code == 2
    assert "--db" in err
    code, _, err = run(
        capsys, "steps", "resolve", "pay-1", "9", "--db", str(in_flight_db), "--rerun"
    )
    assert (code, err) == (1, f"agentmw: {in_flight_db}: thread 'pay-1' has no step 9\n")
    missing = tmp_path / "missing.db"
    code, _, err = run(capsys, "steps", "resolve", "pay-1", "2", "--db", str(missing), "--rerun")
    assert (code, err) == (2, f"agentmw: {missing}: no such file\n")
    assert not missing.exists()  # never created
    with sqlite3.connect(in_flight_db) as conn:
        assert read_steps(conn, "pay-1")[1].status == "started"  # nothing changed


def test_steps_reads_a_version_1_file_without_changing_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import shutil

    fixture = Path(__file__).parent / "fixtures" / "checkpoints_v1.sqlite"
    db = tmp_path / "v1.sqlite"
    shutil.copyfile(fixture, db)
    before = db.read_bytes()
    code, out, err = run(capsys, "steps", str(db), "v1-thread")
    assert (code, err) == (0, "")
    rows = [line.split() for line in lines(out)[2:]]
    assert [(r[0], r[2], r[3], r[-1]) for r in rows] == [
        ("1", "model", "completed", "-"),  # no idempotency key in version 1
        ("2", "search", "completed", "-"),
        ("3", "broken", "failed", "-"),
        ("4", "model", "completed", "-"),
    ]
    code, out, _ = run(capsys, "steps", str(db))
    assert (code, out) == (0, f"{db}: no steps in flight\n")
    assert db.read_bytes() == before  # read-only: not upgraded
