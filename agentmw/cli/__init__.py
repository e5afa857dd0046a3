"""The `agentmw` command: read the SQLite sink and checkpoint files, check price files.

Every database is opened read-only, except by `agentmw steps resolve`, which writes one step
record, and `agentmw approvals approve | reject | edit`, which write one approval's decision.
Exit codes: 0 success, 1 the answer is "no" (an invalid price file, an unknown thread or step, a
step not in flight, an approval that is missing or decided already), 2 the command could not
run (bad arguments, missing or foreign file).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

from agentmw._version import version
from agentmw.cli.approvals import approvals_parser
from agentmw.cli.db import CliError, cell, format_table, open_db
from agentmw.errors import AgentMWError
from agentmw.pricing import check_pricing_file, format_cost
from agentmw.stores._checkpoint_records import UNSET
from agentmw.stores._sqlite_saver import (
    SqliteSaver,
    read_snapshot,
    read_started,
    read_steps,
    read_threads,
)
from agentmw.stores._sqlite_sinks import read_events, read_usage_totals

__all__ = ["main"]


def _events(args: argparse.Namespace, out: TextIO) -> int:
    with open_db(args.db, "events") as conn:
        events = read_events(conn, args.session)
    rows = [
        [
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            cell(e.session_id),
            e.name,
            cell(e.step),
            cell(e.model or e.tool),
            cell(e.failure_class or e.detail),
        ]
        for e in events
    ]
    headers = ["AT (UTC)", "SESSION", "EVENT", "STEP", "MODEL/TOOL", "DETAIL"]
    print(format_table(headers, rows, "lllr"), file=out)
    return 0


def _usage(args: argparse.Namespace, out: TextIO) -> int:
    with open_db(args.db, "usage") as conn:
        totals = read_usage_totals(conn)
    rows = []
    for model in sorted(totals):
        t = totals[model]
        rows.append(
            [
                model,
                str(t["turns"]),
                str(t["input_tokens"]),
                str(t["output_tokens"]),
                format_cost(t["cost_usd"]),
            ]
        )
    ints = [sum(t[k] for t in totals.values()) for k in ("turns", "input_tokens", "output_tokens")]
    cost = sum((t["cost_usd"] for t in totals.values()), Decimal(0))
    rows.append(["TOTAL", *(str(n) for n in ints), format_cost(cost)])
    headers = ["MODEL", "TURNS", "INPUT TOKENS", "OUTPUT TOKENS", "COST"]
    print(format_table(headers, rows, "lrrrr"), file=out)
    return 0


def _threads(args: argparse.Namespace, out: TextIO) -> int:
    rows = []
    with open_db(args.db, "checkpoints") as conn:
        for thread in read_threads(conn):
            steps = read_steps(conn, thread)
            snap = read_snapshot(conn, thread)
            cost = snap.cost_usd if snap else sum((s.cost_usd for s in steps), Decimal(0))
            rows.append(
                [
                    thread,
                    str(len(steps)),
                    cell(snap and snap.state),
                    cell(snap and snap.session_id),
                    format_cost(cost),
                    cell(snap and snap.updated_at.strftime("%Y-%m-%d %H:%M:%S")),
                ]
            )
    headers = ["THREAD", "STEPS", "STATE", "LAST SESSION", "COST", "UPDATED (UTC)"]
    print(format_table(headers, rows, "lr"), file=out)
    return 0


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _steps(args: argparse.Namespace, out: TextIO) -> int:
    if args.thread is None:
        return _in_flight(args, out)
    with open_db(args.db, "checkpoints") as conn:
        steps = read_steps(conn, args.thread)
    if not steps:
        print(f"agentmw: {args.db}: no steps for thread {args.thread!r}", file=sys.stderr)
        return 1
    rows = [
        [
            str(s.step),
            s.kind,
            s.name,
            s.status,
            str(s.usage.input_tokens),
            str(s.usage.output_tokens),
            format_cost(s.cost_usd),
            "-" if s.status == "started" else _stamp(s.finished_at),
            cell(s.idempotency_key),
        ]
        for s in steps
    ]
    headers = [
        "STEP", "KIND", "NAME", "STATUS", "INPUT", "OUTPUT", "COST", "FINISHED (UTC)",
        "IDEMPOTENCY KEY",
    ]  # fmt: skip
    print(format_table(headers, rows, "rlllrrr"), file=out)
    return 0


def _in_flight(args: argparse.Namespace, out: TextIO) -> int:
    with open_db(args.db, "checkpoints") as conn:
        started = read_started(conn)
    if not started:
        print(f"{args.db}: no steps in flight", file=out)
        return 0
    rows = [
        [s.thread_id, str(s.step), s.kind, s.name, cell(s.idempotency_key), _stamp(s.started_at)]
        for s in started
    ]
    headers = ["THREAD", "STEP", "KIND", "NAME", "IDEMPOTENCY KEY", "STARTED (UTC)"]
    print(format_table(headers, rows, "lr"), file=out)
    print(
        f"{len(started)} step(s) in flight: resolve each with"
        " `agentmw steps resolve THREAD STEP --db DB --result JSON | --rerun`",
        file=out,
    )
    return 0


def _resolve(args: argparse.Namespace, out: TextIO) -> int:
    result: Any = UNSET
    if args.result is not None:
        try:
            result = json.loads(args.result)
        except json.JSONDecodeError as exc:
            raise CliError(f"--result is not valid JSON ({exc.msg})") from exc
    with open_db(args.db, "checkpoints"):
        pass  # an existing agentmw checkpoint file: the saver below never creates one
    saver = SqliteSaver(args.db)
    try:
        record = saver.resolve_step(args.thread, args.step, result=result, rerun=args.rerun)
    except (TypeError, ValueError) as exc:
        print(f"agentmw: {args.db}: {exc}", file=sys.stderr)
        return 1
    finally:
        saver.close()
    if record.status == "rerun":
        print(
            f"thread {args.thread!r} step {args.step}: a resume runs it again"
            f" (idempotency key {record.idempotency_key})",
            file=out,
        )
    else:
        print(f"thread {args.thread!r} step {args.step}: completed; a resume replays it", file=out)
    return 0


def _pricing_check(args: argparse.Namespace, out: TextIO) -> int:
    prices, errors = check_pricing_file(args.file)
    if errors:
        for message in errors:
            print(message, file=sys.stderr)
        if len(errors) > 1:
            print(f"{args.file}: {len(errors)} error(s)", file=sys.stderr)
        return 1

    def rate(value: Decimal | None) -> str:
        return "-" if value is None else str(value)

    rows = [
        [
            model,
            rate(p.input_per_million),
            rate(p.output_per_million),
            rate(p.cache_read_per_million),
            rate(p.cache_write_per_million),
        ]
        for model, p in sorted(prices.items())
    ]
    headers = ["MODEL", "INPUT $/M", "OUTPUT $/M", "CACHE READ $/M", "CACHE WRITE $/M"]
    print(format_table(headers, rows, "lrrrr"), file=out)
    print(f"{args.file}: ok, {len(prices)} model(s)", file=out)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentmw",
        description="Inspect agentmw SQLite sink and checkpoint files; check price files.",
    )
    parser.add_argument("--version", action="version", version=f"agentmw {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("events", help="list the events of a SqliteEventSink file")
    p.add_argument("db", metavar="DB")
    p.add_argument("--session", metavar="ID", help="only the events of this session")
    p.set_defaults(run=_events)
    p = sub.add_parser("usage", help="cost per model from a SqliteUsageSink file")
    p.add_argument("db", metavar="DB")
    p.set_defaults(run=_usage)
    p = sub.add_parser("threads", help="list the threads of a SqliteSaver file")
    p.add_argument("db", metavar="DB")
    p.set_defaults(run=_threads)
    p = sub.add_parser(
        "steps",
        help="list the steps in flight, or every step of one thread; `steps resolve` resolves one",
        description="Without THREAD: the started (in-flight) steps of every thread, with their"
        " idempotency keys. With THREAD: every step of that thread. `agentmw steps resolve"
        " THREAD STEP --db DB --result JSON | --rerun` resolves an in-flight step.",
    )
    p.add_argument("db", metavar="DB")
    p.add_argument("thread", metavar="THREAD", nargs="?")
    p.set_defaults(run=_steps)
    sub.add_parser(
        "approvals",
        help="durable approvals: `approvals list | approve | reject | edit ... --db DB`",
    )  # parsed by `approvals_parser` (see `main`)
    p = sub.add_parser("pricing", help="price file tools")
    psub = p.add_subparsers(dest="pricing_command", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="validate a JSON or TOML price file, listing every error")
    c.add_argument("file", metavar="FILE")
    c.set_defaults(run=_pricing_check)
    return parser


def _resolve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentmw steps resolve",
        description="Resolve a step that was in flight when its run stopped (this writes to DB):"
        " --result stores its result (a resume replays it), --rerun lets a resume run it again"
        " with the same idempotency key.",
    )
    parser.add_argument("thread", metavar="THREAD")
    parser.add_argument("step", metavar="STEP", type=int)
    parser.add_argument("--db", metavar="DB", required=True, help="the SqliteSaver file")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--result", metavar="JSON", help="the step's result, as JSON")
    how.add_argument("--rerun", action="store_true", help="run it again on resume")
    parser.set_defaults(run=_resolve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `agentmw` command line and return its exit code.

    Args:
        argv: the arguments after the program name; None reads `sys.argv[1:]`.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:2] == ["steps", "resolve"]:  # a nested command beside `steps DB [THREAD]`
            args = _resolve_parser().parse_args(argv[2:])
        elif argv[:1] == ["approvals"]:
            args = approvals_parser().parse_args(argv[1:])
        else:
            args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad arguments
        return exc.code if isinstance(exc.code, int) else 2
    try:
        code: int = args.run(args, sys.stdout)
    except (CliError, AgentMWError) as exc:
        print(f"agentmw: {exc}", file=sys.stderr)
        return 2
    return code
