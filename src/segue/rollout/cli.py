"""``segue rollout status | set | kill | history``: the traffic split from the command line
(and the guarded rollout's commands, :mod:`segue.rollout.guard_cli`, and ``shadow`` /
``shadow-report``, from :mod:`segue.rollout.shadow.cli`).

The flag (its name, allowed paths and baseline) comes from the command's
:class:`segue.cli.CliContext` (``rollout``), by default from ``SEGUE_ROLLOUT_FLAG``,
``SEGUE_ROLLOUT_PATHS`` and ``SEGUE_ROLLOUT_BASELINE``. Bad input exits 2 naming the field and
writes nothing.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from typing import TYPE_CHECKING, Any

from segue.rollout.definition import RolloutError

if TYPE_CHECKING:
    from segue.cli import CliContext
    from segue.rollout.definition import FlagSpec, SplitDefinition
    from segue.rollout.store import FlagVersion

RULE = re.compile(
    r"^\s*(?P<attribute>[A-Za-z_][A-Za-z0-9_.-]*)\s*"
    r"(?:(?P<op>==|>=|<=|>|<)\s*(?P<value>[^=\[\]]+?)|\s+in\s+\[(?P<values>[^\]]*)\])"
    r"\s*=\s*(?P<path>[A-Za-z0-9_.-]+)\s*$"
)


def add_rollout_commands(subparsers: Any) -> None:
    """Add ``segue rollout ...`` to the ``segue`` parser's subparsers.

    :param subparsers: what ``add_subparsers`` returned for the ``segue`` parser.
    """
    rollout = subparsers.add_parser("rollout", help="the traffic split between execution paths")
    commands = rollout.add_subparsers(dest="rollout_command", required=True)

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--url", help="database URL (default: the workflow's)")
        return parser

    common(commands.add_parser("status", help="the split in force")).set_defaults(run=_status)
    change = argparse.ArgumentParser(add_help=False)
    change.add_argument("--reason", required=True, help="why (recorded in the history)")
    change.add_argument("--actor", default=_os_user(), help="who (default: the OS user)")
    change.add_argument(
        "--expected-version", type=int, help="refuse unless this version is in force"
    )
    put = common(
        commands.add_parser(
            "set",
            parents=[change],
            help="a new split (turns the kill switch off); options left out keep their value",
        )
    )
    put.add_argument("--weights", required=True, help="percent per path: dag=90,events=10")
    put.add_argument("--sticky-by", help="the context attribute to bucket by (order_id, ...)")
    put.add_argument("--baseline", help="the kill switch's path")
    put.add_argument(
        "--rule",
        action="append",
        metavar="RULE",
        help="'amount>500=dag', 'currency in [JPY,KRW]=saga' (repeatable, first match wins; "
        "given: replaces the rules in force)",
    )
    put.add_argument("--no-rules", action="store_true", help="drop the rules in force")
    put.set_defaults(run=_set)
    common(
        commands.add_parser("kill", parents=[change], help="every new decision to the baseline")
    ).set_defaults(run=_kill)
    common(commands.add_parser("history", help="every change: who, when, what, why")).set_defaults(
        run=_history
    )
    from segue.rollout.guard_cli import add_guard_commands
    from segue.rollout.shadow.cli import add_shadow_commands

    add_guard_commands(commands, change)
    add_shadow_commands(commands, common, _os_user())


def parse_weights(text: str) -> dict[str, int]:
    """``dag=90,events=10`` as ``{"dag": 90, "events": 10}``; RolloutError naming ``weights``.

    :param text: comma-separated ``path=percent`` pairs.
    """
    weights: dict[str, int] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        path, sep, value = part.partition("=")
        if not sep or not path.strip() or not value.strip().isdigit():
            raise RolloutError("weights", f"{part!r} is not path=percent (e.g. dag=90)")
        if path.strip() in weights:
            raise RolloutError(f"weights.{path.strip()}", "given twice")
        weights[path.strip()] = int(value)
    if not weights:
        raise RolloutError("weights", "give at least one path=percent")
    return weights


def parse_rule(text: str, index: int = 0) -> dict[str, Any]:
    """One ``--rule`` as a rule's JSON form; RolloutError naming ``rules[index]``.

    :param text: ``attribute<op>value=path`` (op ``==``, ``>``, ``>=``, ``<``, ``<=``) or
        ``attribute in [a,b]=path``.
    :param index: the rule's position, for the error.
    """
    match = RULE.match(text)
    if match is None:
        raise RolloutError(
            f"rules[{index}]",
            f"{text!r} is not attribute<op>value=path (e.g. amount>500=dag, "
            "currency in [JPY]=saga)",
        )
    if match["values"] is not None:
        values = [value.strip() for value in match["values"].split(",") if value.strip()]
        return {"attribute": match["attribute"], "operator": "in", "value": values,
                "path": match["path"]}  # fmt: skip
    return {
        "attribute": match["attribute"],
        "operator": match["op"],
        "value": match["value"].strip(),
        "path": match["path"],
    }


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _session(args: argparse.Namespace, context: CliContext) -> Any:
    from sqlalchemy.orm import Session

    from segue.migrations import migrated
    from segue.rollout.tables import COMPONENT
    from segue.store.engine import build_engine

    engine = migrated(build_engine(args.url or context.database_url()), [COMPONENT])
    return Session(engine)


def _refused(error: RolloutError) -> int:
    print(f"refused, nothing changed: {error}", file=sys.stderr)
    return 2


def _spec(context: CliContext) -> FlagSpec | int:
    try:
        return context.rollout()
    except RolloutError as error:
        return _refused(error)


def _status(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.store import current

    spec = _spec(context)
    if isinstance(spec, int):
        return spec
    with _session(args, context) as session:
        version = current(session, spec)
    _print_version(spec, version)
    return 0


def _set(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.store import current, set_split

    spec = _spec(context)
    if isinstance(spec, int):
        return spec
    with _session(args, context) as session:
        try:
            in_force = current(session, spec).definition
            data = _definition(args, in_force)
            version = set_split(
                session,
                spec,
                data,
                args.actor,
                args.reason,
                expected_version=args.expected_version,
            )
        except RolloutError as error:
            return _refused(error)
        session.commit()
    print(f"{spec.name}: version {version.version} by {version.changed_by}")
    _print_version(spec, version)
    return 0


def _definition(args: argparse.Namespace, in_force: SplitDefinition) -> dict[str, Any]:
    rules: list[Any] = [rule.model_dump(mode="json") for rule in in_force.rules]
    if args.no_rules:
        rules = []
    if args.rule:
        rules = [parse_rule(text, index) for index, text in enumerate(args.rule)]
    return {
        "weights": parse_weights(args.weights),
        "baseline": args.baseline or in_force.baseline,
        "sticky_key": args.sticky_by or in_force.sticky_key,
        "rules": rules,
        "killed": False,
    }


def _kill(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.store import kill

    spec = _spec(context)
    if isinstance(spec, int):
        return spec
    with _session(args, context) as session:
        try:
            version = kill(
                session, spec, args.actor, args.reason, expected_version=args.expected_version
            )
        except RolloutError as error:
            return _refused(error)
        session.commit()
    print(
        f"{spec.name}: killed at version {version.version}; new decisions go to "
        f"{version.definition.baseline} within a second, decisions made stay"
    )
    return 0


def _history(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.store import history

    spec = _spec(context)
    if isinstance(spec, int):
        return spec
    with _session(args, context) as session:
        changes = history(session, spec)
    if not changes:
        print(f"{spec.name}: no change yet (everything to {spec.baseline})")
    for change in changes:
        print(
            f"v{change.version}  {change.changed_at:%Y-%m-%d %H:%M:%S%z}  {change.changed_by}: "
            f"{change.reason}"
        )
        for line in change.changes or ("no change",):
            print(f"    {line}")
    return 0


def _print_version(spec: FlagSpec, version: FlagVersion) -> None:
    definition = version.definition
    when = f"{version.changed_at:%Y-%m-%d %H:%M:%S%z}" if version.changed_at else "never changed"
    print(f"flag {spec.name}  version {version.version}  ({version.changed_by}, {when})")
    print(f"  killed: {'YES, everything to ' + definition.baseline if definition.killed else 'no'}")
    print(f"  baseline: {definition.baseline}   sticky by: {definition.sticky_key}")
    weights = ", ".join(f"{path}={definition.share(path)}%" for path in spec.paths)
    print(f"  weights: {weights}")
    for index, rule in enumerate(definition.rules):
        print(f"  rule {index}: {rule.describe()}")
    if version.reason:
        print(f"  reason: {version.reason}")
