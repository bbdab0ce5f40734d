"""``segue rollout shadow`` (switch shadow mode) and ``segue rollout shadow-report`` (compare).

``shadow --percent N [--path events] --reason ...`` writes a new audited version of the shadow
setting, ``shadow --off --reason ...`` switches it off, ``shadow`` alone prints it and its
history. ``shadow-report`` compares each mirrored subject with its shadow through the
workflow's provider (``SEGUE_SHADOW_PAIRS``) and prints the aggregate and every mismatch with
both sides' values (``--all``: every pair; ``--json``: the whole report). Bad input exits 2
naming the field and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from segue.rollout.definition import RolloutError

if TYPE_CHECKING:
    from segue.cli import CliContext
    from segue.rollout.shadow.compare import ShadowReport

DEFAULT_PATH = "events"


def add_shadow_commands(
    commands: Any,
    common: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
    actor: str,
) -> None:
    """Add ``shadow`` and ``shadow-report`` to ``segue rollout``'s subcommands.

    :param commands: the ``rollout`` parser's subparsers.
    :param common: adds the options every rollout command takes (``--url``).
    :param actor: the default ``--actor`` (the OS user).
    """
    shadow = common(
        commands.add_parser(
            "shadow", help="mirror a share of the orders to a candidate path, effects stubbed"
        )
    )
    shadow.add_argument("--actor", default=actor, help="who (default: the OS user)")
    shadow.add_argument(
        "--expected-version", type=int, help="refuse unless this shadow version is in force"
    )
    shadow.add_argument("--percent", type=int, help="share of orders mirrored, 0..100")
    shadow.add_argument("--path", default=DEFAULT_PATH, help="the candidate (default: events)")
    shadow.add_argument("--off", action="store_true", help="switch shadow mode off")
    shadow.add_argument("--reason", help="why (recorded; required to change)")
    shadow.set_defaults(run=_shadow)
    report = common(
        commands.add_parser("shadow-report", help="each mirrored order against its shadow")
    )
    report.add_argument("--limit", type=int, default=1000, help="newest pairs read (1000)")
    report.add_argument("--all", action="store_true", help="print every pair, not only mismatches")
    report.add_argument("--json", action="store_true", help="the whole report as JSON")
    report.set_defaults(run=_report)


def _session(args: argparse.Namespace, context: CliContext) -> Any:
    from sqlalchemy.orm import Session

    from segue.migrations import migrated
    from segue.rollout.shadow.tables import COMPONENT
    from segue.store.engine import build_engine

    engine = migrated(build_engine(args.url or context.database_url()), [COMPONENT])
    return Session(engine)


def _refused(error: RolloutError) -> int:
    print(f"refused, nothing changed: {error}", file=sys.stderr)
    return 2


def _shadow(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.shadow.switch import set_shadow, shadow_history, shadow_in_force

    try:
        flag = context.rollout()
        if args.off and args.percent is not None:
            raise RolloutError("percent", "give --percent or --off, not both")
        changing = args.off or args.percent is not None
        if changing and not args.reason:
            raise RolloutError("reason", "say why with --reason (it is recorded)")
    except RolloutError as error:
        return _refused(error)
    with _session(args, context) as session:
        if changing:
            try:
                setting = set_shadow(
                    session,
                    flag,
                    path=None if args.off else args.path,
                    percent=0 if args.off else args.percent,
                    actor=args.actor,
                    reason=args.reason,
                    expected_version=args.expected_version,
                )
            except RolloutError as error:
                return _refused(error)
            session.commit()
            print(f"{flag.name}: shadow version {setting.version} by {setting.changed_by}")
        in_force = shadow_in_force(session, flag.name)
        print(f"shadow mode: {in_force.describe()}  (version {in_force.version})")
        for old in shadow_history(session, flag.name):
            when = f"{old.changed_at:%Y-%m-%d %H:%M:%S%z}" if old.changed_at else ""
            print(f"  v{old.version}  {when}  {old.changed_by}: {old.describe()}: {old.reason}")
    return 0


def shadow_report(session: Any, flag_name: str, limit: int = 1000) -> ShadowReport | None:
    """The comparison of ``flag_name``'s mirrored subjects (None: no provider configured).

    :param session: an open session on the business store.
    :param flag_name: the split's flag.
    :param limit: how many of the newest pairs to read.
    """
    from segue.rollout.shadow.compare import build_report, load_pairs_provider
    from segue.rollout.shadow.switch import shadow_in_force
    from segue.settings import get_settings

    provider = load_pairs_provider(get_settings().shadow_pairs)
    if provider is None:
        return None
    return build_report(shadow_in_force(session, flag_name), provider(session, limit))


def _report(args: argparse.Namespace, context: CliContext) -> int:
    if args.limit < 1:
        return _refused(RolloutError("limit", "must be at least 1"))
    try:
        flag = context.rollout()
    except RolloutError as error:
        return _refused(error)
    with _session(args, context) as session:
        report = shadow_report(session, flag.name, args.limit)
    if report is None:
        print("no shadow observations configured (SEGUE_SHADOW_PAIRS)", file=sys.stderr)
        return 2
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    print_report(report, every_pair=args.all)
    return 0


def print_report(report: ShadowReport, *, every_pair: bool = False) -> None:
    """The report for a reader: the setting, the aggregate, then each mismatch (or pair).

    :param report: the comparison.
    :param every_pair: print every pair, not only the mismatches.
    """
    print(f"shadow mode: {report.setting.describe()}  (version {report.setting.version})")
    print(
        f"mirrored {report.mirrored}  compared {report.compared}  matching {report.matching}  "
        f"mismatching {report.compared - report.matching}  pending {report.pending}"
    )
    for name, side in (("real", report.real), ("shadow", report.shadow)):
        outcomes = ", ".join(f"{key}={count}" for key, count in side.outcomes.items()) or "-"
        print(
            f"  {name:6}  {outcomes}  charged {side.amount_charged}  "
            f"latency p50 {side.latency_p50_ms} ms  p95 {side.latency_p95_ms} ms"
        )
    if report.by_field:
        print("mismatches by field: " + ", ".join(f"{k}={v}" for k, v in report.by_field.items()))
    for mismatch in report.mismatches:
        print(
            f"  MISMATCH {mismatch.subject_id}  {mismatch.field}: "
            f"real={mismatch.real}  shadow={mismatch.shadow}"
        )
    if every_pair:
        for pair in report.pairs:
            print(
                f"  {pair.subject_id} ({pair.real_path}) {pair.real.outcome}/{pair.real.reason} "
                f"{pair.real.amount_charged}  vs  {pair.shadow_id} ({pair.shadow_path}) "
                f"{pair.shadow.outcome}/{pair.shadow.reason} {pair.shadow.amount_charged}"
            )
