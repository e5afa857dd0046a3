"""`agentmw approvals list | approve | reject | edit`: durable approvals of a SqliteSaver file.

`list` opens the file read-only; `approve`, `reject` and `edit` write one approval's decision
with `SqliteSaver.resolve_approval` (never creating a missing file).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TextIO

from agentmw.cli.db import CliError, format_table, open_db
from agentmw.stores._sqlite_approvals import read_all_approvals
from agentmw.stores._sqlite_saver import SqliteSaver

__all__: list[str] = []  # internal to `agentmw.cli`


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _json_cell(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _approvals_list(args: argparse.Namespace, out: TextIO) -> int:
    with open_db(args.db, "checkpoints") as conn:
        approvals = read_all_approvals(conn, pending_only=not args.all)
    if not approvals:
        print(f"{args.db}: no approvals {'recorded' if args.all else 'pending'}", file=out)
        return 0
    rows = [
        [
            a.thread_id,
            str(a.step),
            a.kind,
            a.name,
            a.rule,
            a.prompt,
            _json_cell(a.arguments),
            a.status,
            _stamp(a.requested_at),
        ]
        for a in approvals
    ]
    headers = [
        "THREAD", "STEP", "KIND", "NAME", "RULE", "PROMPT", "ARGUMENTS", "STATUS",
        "REQUESTED (UTC)",
    ]  # fmt: skip
    print(format_table(headers, rows, "lr"), file=out)
    pending = sum(a.status == "pending" for a in approvals)
    if pending:
        print(
            f"{pending} approval(s) pending: decide each with `agentmw approvals"
            " approve | reject THREAD STEP --db DB` or `... edit THREAD STEP --db DB"
            " --arguments JSON`, then resume the thread",
            file=out,
        )
    return 0


def _approvals_decide(args: argparse.Namespace, out: TextIO) -> int:
    arguments = None
    if args.decision == "edit":
        try:
            arguments = json.loads(args.arguments)
        except json.JSONDecodeError as exc:
            raise CliError(f"--arguments is not valid JSON ({exc.msg})") from exc
    with open_db(args.db, "checkpoints"):
        pass  # an existing agentmw checkpoint file: the saver below never creates one
    saver = SqliteSaver(args.db)
    try:
        record = saver.resolve_approval(
            args.thread, args.step, args.decision, arguments=arguments, note=args.note
        )
    except (TypeError, ValueError) as exc:
        print(f"agentmw: {args.db}: {exc}", file=sys.stderr)
        return 1
    finally:
        saver.close()
    then = {
        "approved": "a resume runs the call",
        "edited": "a resume runs the call with the edited arguments",
        "rejected": "a resume raises ApprovalRejectedError instead of the call",
    }[record.status]
    print(f"thread {args.thread!r} step {args.step}: {record.status}; {then}", file=out)
    return 0


def approvals_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentmw approvals",
        description="Durable approvals of a SqliteSaver file: `list` shows them (read-only);"
        " `approve`, `reject` and `edit` record a decision (these write to DB).",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser("list", help="the pending approvals (--all: every decision too)")
    p.add_argument("--db", metavar="DB", required=True, help="the SqliteSaver file")
    p.add_argument("--all", action="store_true", help="also the decided approvals")
    p.set_defaults(run=_approvals_list)
    for action, decision, what in (
        ("approve", "approve", "approve the call: a resume runs it"),
        ("reject", "reject", "reject the call: a resume raises ApprovalRejectedError"),
        ("edit", "edit", "run the call with other arguments (--arguments JSON object)"),
    ):
        p = sub.add_parser(action, help=what)
        p.add_argument("thread", metavar="THREAD")
        p.add_argument("step", metavar="STEP", type=int)
        p.add_argument("--db", metavar="DB", required=True, help="the SqliteSaver file")
        if action == "edit":
            p.add_argument(
                "--arguments",
                metavar="JSON",
                required=True,
                help="the call's new arguments: a JSON object of parameter names to values",
            )
        p.add_argument("--note", metavar="TEXT", help="the reviewer's note, kept with it")
        p.set_defaults(run=_approvals_decide, decision=decision)
    return parser
