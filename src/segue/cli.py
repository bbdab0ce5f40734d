"""The library's command line: ``segue events | db | rollout ...`` and what others add.

The library knows no workflow. What a command needs of one (the business database, the event
registry, where the committed schemas live, the migration components of its store) comes from
a :class:`CliContext`: by default read from :mod:`segue.settings` (``SEGUE_DATABASE_URL``,
``SEGUE_EVENT_REGISTRY``, ``SEGUE_SCHEMAS_ROOT``, ``SEGUE_ROLLOUT_*``) with the library's own
components; a project's own command passes its values in a ``CliContext`` instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segue.events.registry import EventRegistry
    from segue.migrations.component import Component
    from segue.rollout.definition import FlagSpec


@dataclass(frozen=True)
class CliContext:
    """What the library's commands need of a workflow, each resolved only when used.

    :param database_url: returns the business store's SQLAlchemy URL.
    :param registry: returns the event registry (the workflow's event types).
    :param schemas_root: returns the folder the registry's ``schema_id()`` paths are relative to.
    :param components: returns the migration components of the workflow's business store, in
        upgrade order (``segue db ...``); default: the library's own.
    :param rollout: returns the workflow's routing flag (name, allowed paths, baseline) for
        ``segue rollout ...``; default: from ``SEGUE_ROLLOUT_FLAG``, ``SEGUE_ROLLOUT_PATHS``,
        ``SEGUE_ROLLOUT_BASELINE``.
    """

    database_url: Callable[[], str]
    registry: Callable[[], EventRegistry]
    schemas_root: Callable[[], Path]
    components: Callable[[], Sequence[Component]] = field(default=lambda: _library_components())
    rollout: Callable[[], FlagSpec] = field(default=lambda: _settings_flag())


def _library_components() -> Sequence[Component]:
    from segue.migrations.library import library_components

    return library_components()


def _settings_flag() -> FlagSpec:
    from segue.rollout.definition import flag_from_settings

    return flag_from_settings()


def settings_context() -> CliContext:
    """The context read from this process's settings (``SEGUE_*`` environment variables)."""
    from segue.imports import load_registry
    from segue.settings import get_settings

    def registry() -> EventRegistry:
        path = get_settings().event_registry
        if not path:
            raise RuntimeError("no event registry: set SEGUE_EVENT_REGISTRY to 'module:attribute'")
        return load_registry(path)

    def schemas_root() -> Path:
        folder = get_settings().schemas_root
        if folder is None:
            raise RuntimeError("no schema folder: set SEGUE_SCHEMAS_ROOT")
        return folder

    return CliContext(
        lambda: get_settings().database_url, registry, schemas_root, _library_components
    )


Command = Callable[[argparse.Namespace, CliContext], int]


def build_parser(prog: str = "segue") -> tuple[argparse.ArgumentParser, Any]:
    """The ``segue`` parser with the library's commands, and its subparsers to add more to.

    Each command sets ``run`` (a :data:`Command`) in its defaults.

    :param prog: the program name shown in usage and help.
    """
    from segue.eventlog.cli import add_event_commands
    from segue.migrations.cli import add_db_commands
    from segue.rollout.cli import add_rollout_commands

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    add_event_commands(commands)
    add_db_commands(commands)
    add_rollout_commands(commands)
    return parser, commands


def run(args: argparse.Namespace, context: CliContext) -> int:
    """Run a parsed command with ``context``; returns its exit code."""
    command: Command = args.run
    return command(args, context)


def main(argv: Sequence[str] | None = None, *, context: CliContext | None = None) -> int:
    """Parse ``argv`` and run the command (context: from settings unless given)."""
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    return run(args, context or settings_context())


if __name__ == "__main__":
    raise SystemExit(main())
