"""``segue compare``: run the article's scenario on each path and write the report.

Against the stack ``make run`` started (default), a stack named by URLs (the ``segue chaos``
options), or one it starts itself and stops afterwards (``--start-stack``). ``--quick`` is the
short run the test suite uses; the default is the full benchmark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tools.chaos.cli import PATHS, add_stack_arguments, parse_paths, stack_of


def add_compare_command(commands: Any) -> None:
    """``segue compare``.

    :param commands: the parser's subparsers.
    """
    compare = commands.add_parser("compare", help="run the article's scenario on each path")
    compare.add_argument("--quick", action="store_true", help="the short run (a few minutes)")
    compare.add_argument("--paths", default=",".join(PATHS), help="comma-separated (default: all)")
    compare.add_argument("--out", type=Path, default=Path("compare-report"), help="report folder")
    compare.add_argument(
        "--start-stack", action="store_true", help="start the stack first (`segue up`), stop after"
    )
    add_stack_arguments(compare)
    compare.set_defaults(run=run_compare_command)


def run_compare_command(args: argparse.Namespace, _context: object) -> int:
    """Run the comparison; 0 when the report is written and every invariant held, 1 when an
    invariant failed, 2 on bad input or a stack that does not answer.

    :param args: parsed options.
    """
    from tools import up
    from tools.chaos.stack import StackError
    from tools.compare.figures import invariants_hold
    from tools.compare.report import write_report
    from tools.compare.run import run_compare
    from tools.compare.scenario import FULL, QUICK

    try:
        paths = parse_paths(args.paths)
    except ValueError as exc:
        print(f"segue compare: {exc}", file=sys.stderr)
        return 2
    if args.start_stack:
        up.up(args.home or up.LOCAL_HOME)
    try:
        stack = stack_of(args)
        stack.check(airflow=paths != ["events"])
        results = run_compare(stack, QUICK if args.quick else FULL, paths, stack.processes())
    except StackError as exc:
        print(f"segue compare: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.start_stack:
            up.down(args.home or up.LOCAL_HOME)
    report = write_report(results, args.out)
    held = invariants_hold(results)
    print(f"report: {report} ({args.out / 'report.md'}); invariants {'hold' if held else 'FAIL'}")
    return 0 if held else 1
