"""``segue chaos``: the fault-injection suite against a running stack, with the invariants.

For each path, orders of the usual mix go through the front door while the path's fault lands
(a DAG task's process killed, the charge service killed, the broker connections dropped); then
every order must be terminal, charged at most once, refunded when it failed after a charge,
and hold no stock. Prints each fault and its verdict; exits 1 when an invariant fails, 2 when
the input is bad or the stack does not answer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

PATHS = ("dag", "saga", "hybrid", "events")


def parse_paths(text: str) -> list[str]:
    """``dag,events`` -> ``["dag", "events"]``; ValueError naming an unknown path.

    :param text: comma-separated path names.
    """
    paths = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in paths if name not in PATHS]
    if unknown or not paths:
        raise ValueError(
            f"unknown path {', '.join(unknown) or '(none)'}: choose from {', '.join(PATHS)}"
        )
    return paths


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options naming a running stack (default: the one `make run` started here).

    :param parser: the command's parser.
    """
    group = parser.add_argument_group("the stack (default: the one `make run` started here)")
    group.add_argument("--home", type=Path, help="segue up's home (default: .airflow)")
    group.add_argument("--intake-url", help="the front door, e.g. http://host:8097")
    group.add_argument("--api-key", help="an API key of the intake")
    group.add_argument("--database-url", help="the business store's SQLAlchemy URL")
    group.add_argument("--gateway-url", help="the payment gateway")
    group.add_argument("--gateway-token", help="the gateway's admin token")
    group.add_argument("--amqp-url", help="RabbitMQ")
    group.add_argument("--airflow-url", help="Airflow's api-server")
    group.add_argument("--airflow-user", help="the Airflow login")
    group.add_argument("--airflow-password", help="its password")


def stack_of(args: argparse.Namespace) -> Any:
    """The stack the options name: the local one (processes from ``--home``'s pid files), with
    any option given put over it; only URLs and no ``--home``: a deployment elsewhere.

    :param args: parsed options of :func:`add_stack_arguments`.
    :raises StackError: when the local stack's files are missing and no URLs are given.
    """
    from tools.chaos.stack import Stack, local_stack
    from tools.up import LOCAL_HOME

    given = {
        "intake_url": args.intake_url,
        "api_key": args.api_key,
        "database_url": args.database_url,
        "gateway_url": args.gateway_url,
        "gateway_token": args.gateway_token,
        "amqp_url": args.amqp_url,
        "airflow_url": args.airflow_url,
        "airflow_user": args.airflow_user,
        "airflow_password": args.airflow_password,
    }
    given = {key: value for key, value in given.items() if value is not None}
    remote = all(given.get(k) for k in ("intake_url", "api_key", "database_url", "gateway_url"))
    if remote and not args.home:
        return Stack(**given)  # a deployment elsewhere: no processes of it on this host
    return local_stack(args.home or LOCAL_HOME, **given)


def add_chaos_command(commands: Any) -> None:
    """``segue chaos``.

    :param commands: the parser's subparsers.
    """
    chaos = commands.add_parser(
        "chaos", help="inject faults into a running stack, check invariants"
    )
    chaos.add_argument(
        "--paths", default=",".join(PATHS), help="comma-separated (default: all four)"
    )
    chaos.add_argument("--orders", type=int, default=10, help="orders per fault (default 10)")
    chaos.add_argument("--rate", type=float, default=2.0, help="orders a second (default 2)")
    chaos.add_argument("--timeout", type=float, default=300.0, help="seconds to wait per fault")
    add_stack_arguments(chaos)
    chaos.set_defaults(run=run_chaos)


def run_chaos(args: argparse.Namespace, _context: object) -> int:
    """Run each path's fault; 0 when every invariant held, 1 when one failed, 2 on bad input.

    :param args: parsed options.
    """
    from include.payments.database import payments_engine
    from tools.chaos.orders import prepare_stock
    from tools.chaos.stack import StackError

    try:
        paths = parse_paths(args.paths)
        if args.orders < 1 or args.rate <= 0:
            raise ValueError("--orders must be at least 1 and --rate above 0")
        stack = stack_of(args)
        stack.check(airflow=paths != ["events"])
    except (ValueError, StackError) as exc:
        print(f"segue chaos: {exc}", file=sys.stderr)
        return 2
    engine = payments_engine(stack.database_url)
    prepare_stock(engine, args.orders * len(paths))
    try:
        failed = sum(not _fault(stack, engine, path, args) for path in paths)
    except StackError as exc:  # the intake refused an order, or routed it elsewhere
        print(f"segue chaos: {exc}", file=sys.stderr)
        return 2
    print(f"segue chaos: {len(paths) - failed} of {len(paths)} paths held their invariants")
    return 1 if failed else 0


def _fault(stack: Any, engine: Any, path: str, args: argparse.Namespace) -> bool:
    """Run ``path``'s fault phase and print its verdict; True when the invariants held.

    :param stack: the stack.
    :param engine: its business store.
    :param path: the path.
    :param args: ``orders``, ``rate``, ``timeout``.
    """
    from tools.chaos.phase import fault_phase, routed_by_email

    print(f"[{path}] placing {args.orders} orders at {args.rate:g}/s", flush=True)
    with routed_by_email(engine, [path], "segue chaos"):
        verdict = fault_phase(stack, engine, path, args.orders, args.rate, args.timeout)
    print(f"[{path}] fault {verdict.fault}: {verdict.injected}")
    if verdict.holds:
        unfaulted = "" if verdict.applied else " (but no fault was injected)"
        print(f"[{path}] PASS: {len(verdict.kinds)} orders terminal, invariants hold "
              f"({verdict.seconds:.0f} s){unfaulted}")  # fmt: skip
        return True
    print(f"[{path}] FAIL: {len(verdict.not_terminal)} orders not terminal "
          f"{verdict.not_terminal[:3]}")  # fmt: skip
    for problem in verdict.violations[:10]:
        print(f"[{path}]   {problem}")
    return False
