"""``segue db upgrade | current | check | revision``: the business store's schema by component.

The components come from the command's :class:`segue.cli.CliContext` (the workflow's list);
``--component`` narrows any command to some of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segue.cli import CliContext
    from segue.migrations.component import Component


def add_db_commands(subparsers: Any) -> None:
    """Add ``segue db ...`` to the ``segue`` parser's subparsers.

    :param subparsers: what ``add_subparsers`` returned for the ``segue`` parser.
    """
    db = subparsers.add_parser("db", help="migrate and check the business store's schema")
    commands = db.add_subparsers(dest="db_command", required=True)

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("--url", help="database URL (default: the workflow's)")
        parser.add_argument(
            "--component",
            action="append",
            metavar="NAME",
            help="only this component (repeatable; default: all of the workflow's)",
        )
        return parser

    common(commands.add_parser("upgrade", help="upgrade every component to head")).set_defaults(
        run=_upgrade
    )
    common(commands.add_parser("current", help="each component's revision and head")).set_defaults(
        run=_current
    )
    common(
        commands.add_parser("check", help="fail if models and migrations differ (alembic check)")
    ).set_defaults(run=_check)
    revision = common(
        commands.add_parser("revision", help="write a new migration for one component")
    )
    revision.add_argument("-m", "--message", required=True, help="what the migration does")
    revision.add_argument(
        "--empty", action="store_true", help="an empty revision (default: autogenerate)"
    )
    revision.set_defaults(run=_revision)


def select(components: Sequence[Component], names: Sequence[str] | None) -> list[Component]:
    """The components called ``names`` (all when None), in their order; unknown names fail."""
    if not names:
        return list(components)
    known = {component.name: component for component in components}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [component for component in components if component.name in names]


def _resolve(args: argparse.Namespace, context: CliContext) -> tuple[Any, list[Component]]:
    from segue.store.engine import build_engine

    url = args.url or context.database_url()
    return build_engine(url), select(context.components(), args.component)


def _upgrade(args: argparse.Namespace, context: CliContext) -> int:
    from segue.migrations.runner import upgrade

    engine, components = _resolve(args, context)
    print(f"upgrading {engine.url.render_as_string(hide_password=True)}")
    upgrade(engine, components, progress=print)
    return 0


def _current(args: argparse.Namespace, context: CliContext) -> int:
    from segue.migrations.runner import current, heads

    engine, components = _resolve(args, context)
    revisions, tips = current(engine, components), heads(components)
    width = max(len(component.name) for component in components)
    for component in components:
        at, head = revisions[component.name], tips[component.name]
        state = "head" if at == head else f"behind, head {head}"
        print(f"{component.name:<{width}}  {at or 'none'}  ({state})")
    return 0


def _check(args: argparse.Namespace, context: CliContext) -> int:
    from segue.migrations.runner import check

    engine, components = _resolve(args, context)
    problems = check(engine, components)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} difference(s) between models and migrations", file=sys.stderr)
        return 1
    print(f"models match migrations ({', '.join(c.name for c in components)})")
    return 0


def _revision(args: argparse.Namespace, context: CliContext) -> int:
    from segue.migrations.runner import revision

    engine, components = _resolve(args, context)
    if len(components) != 1:
        raise SystemExit("name the component of the new revision with --component")
    path = revision(engine, components[0], args.message, autogenerate=not args.empty)
    print(f"wrote {path}: review it, then `segue db upgrade`")
    return 0
