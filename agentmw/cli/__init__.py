"""The `agentmw` command: read the SQLite sink and checkpoint files, check price files.

Every database is opened read-only. Exit codes: 0 success, 1 the answer is "no" (an invalid price
file, an unknown thread), 2 the command could not run (bad arguments, missing or foreign file).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import TextIO

from agentmw._version import version
from agentmw.cli.db import CliError, cell, format_table, open_db
from agentmw.errors import AgentMWError
from agentmw.pricing import check_pricing_file, format_cost
from agentmw.stores._sqlite_saver import read_snapshot, read_steps, read_threads
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


def _steps(args: argparse.Namespace, out: TextIO) -> int:
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
            s.finished_at.strftime("%Y-%m-%d %H:%M:%S"),
        ]
        for s in steps
    ]
    headers = ["STEP", "KIND", "NAME", "STATUS", "INPUT", "OUTPUT", "COST", "FINISHED (UTC)"]
    print(format_table(headers, rows, "rlllrrr"), file=out)
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
    p = sub.add_parser("steps", help="list the checkpointed steps of one thread")
    p.add_argument("db", metavar="DB")
    p.add_argument("thread", metavar="THREAD")
    p.set_defaults(run=_steps)
    p = sub.add_parser("pricing", help="price file tools")
    psub = p.add_subparsers(dest="pricing_command", required=True, metavar="ACTION")
    c = psub.add_parser("check", help="validate a JSON or TOML price file, listing every error")
    c.add_argument("file", metavar="FILE")
    c.set_defaults(run=_pricing_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `agentmw` command line and return its exit code.

    Args:
        argv: the arguments after the program name; None reads `sys.argv[1:]`.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad arguments
        return exc.code if isinstance(exc.code, int) else 2
    try:
        code: int = args.run(args, sys.stdout)
    except (CliError, AgentMWError) as exc:
        print(f"agentmw: {exc}", file=sys.stderr)
        return 2
    return code
