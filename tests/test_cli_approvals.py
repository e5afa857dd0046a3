"""`agentmw approvals`: listing (read-only) and the errors of the writing commands."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from agentmw import Agent
from agentmw.cli import main
from agentmw.errors import ApprovalPendingError
from agentmw.middleware import Checkpoint, Policy
from agentmw.policy import PolicyEngine, Rule, fact, require_approval
from agentmw.stores import SqliteSaver

FIXTURE_V2 = Path(__file__).parent / "fixtures" / "checkpoints_v2.sqlite"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A SqliteSaver file with one pending approval (thread "t-1", step 1)."""
    path = tmp_path / "ck.db"
    saver = SqliteSaver(path)
    rule = Rule("ask", fact("tool") == "send", require_approval("Send it?"))
    agent = Agent("a", stack=[Checkpoint(saver), Policy(PolicyEngine([rule]))])
    with pytest.raises(ApprovalPendingError), agent.session(thread_id="t-1") as s:
        s.run_tool("send", lambda to: to, "ann")
    saver.close()
    return path


def test_list_shows_pending_then_all(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, err = run(capsys, "approvals", "list", "--db", str(db))
    assert (code, err) == (0, "")
    assert out.splitlines()[2].split()[:8] == [
        "t-1", "1", "tool", "send", "ask", "Send", "it?", '{"to":"ann"}',
    ]  # fmt: skip
    assert run(capsys, "approvals", "reject", "t-1", "1", "--db", str(db))[0] == 0
    code, out, _ = run(capsys, "approvals", "list", "--db", str(db))
    assert (code, out) == (0, f"{db}: no approvals pending\n")
    code, out, _ = run(capsys, "approvals", "list", "--db", str(db), "--all")
    assert code == 0
    assert "rejected" in out.splitlines()[2].split()
    assert "pending:" not in out


def test_writing_errors_are_one_line(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, err = run(capsys, "approvals", "approve", "t-1", "9", "--db", str(db))
    assert (code, out, err) == (1, "", f"agentmw: {db}: thread 't-1' has no approval at step 9\n")
    code, _, err = run(
        capsys, "approvals", "edit", "t-1", "1", "--db", str(db), "--arguments", "[1]"
    )
    assert code == 1
    assert (
        err
        == f"agentmw: {db}: arguments must be a mapping of parameter names to values, got list\n"
    )
    code, _, err = run(capsys, "approvals", "edit", "t-1", "1", "--db", str(db), "--arguments", "{")
    assert code == 2
    assert err.startswith("agentmw: --arguments is not valid JSON (")
    assert err.count("\n") == 1
    code, _, _ = run(capsys, "approvals", "edit", "t-1", "1", "--db", str(db))
    assert code == 2  # --arguments is required
    assert SqliteSaver(db).list_approvals()[0].status == "pending"  # nothing changed


def test_a_missing_file_is_never_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.db"
    for argv in (["list"], ["approve", "t", "1"], ["reject", "t", "1"]):
        code, _, err = run(capsys, "approvals", *argv, "--db", str(missing))
        assert (code, err) == (2, f"agentmw: {missing}: no such file\n")
    assert not missing.exists()


def test_list_reads_a_version_2_file_without_changing_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "v2.sqlite"
    shutil.copyfile(FIXTURE_V2, path)
    code, out, _ = run(capsys, "approvals", "list", "--db", str(path))
    assert (code, out) == (0, f"{path}: no approvals pending\n")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT version FROM agentmw_schema").fetchall() == [(2,)]
