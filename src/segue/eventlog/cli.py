"""``segue events ...``: the event log's timeline, replay, parked messages and schema export.

``add_event_commands`` registers the ``events`` command on the ``segue`` parser; each
subcommand stores its runner in ``func``, which returns the exit code (0 ok, 1 failed check or
error, 2 usage). The business database, the event registry and the schema folder come from the
caller's :class:`segue.cli.CliContext`; the broker URL from ``segue.settings``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segue.cli import CliContext

Runner = Callable[[argparse.Namespace, "CliContext"], int]


def add_event_commands(subparsers: Any) -> None:
    """Add ``events`` and its subcommands to the ``segue`` CLI's subparsers.

    :param subparsers: the ``segue`` parser's subparsers.
    """
    events = subparsers.add_parser("events", help="event log, replay, parked messages, schemas")
    events.set_defaults(run=run)
    commands = events.add_subparsers(dest="events_command", required=True)

    timeline = commands.add_parser("timeline", help="print one order's events as a timeline")
    timeline.add_argument("order_id", help="the order id (the events' correlation id)")
    timeline.set_defaults(func=_timeline)

    replay = commands.add_parser("replay", help="republish events from the log or from parking")
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-log", action="store_true", help="republish logged events")
    source.add_argument("--from-parking", metavar="SERVICE", help="move a service's parked back")
    replay.add_argument("--order", help="--from-log: only this order (correlation id)")
    replay.add_argument("--type", dest="event_type", help="--from-log: only this event type")
    replay.add_argument("--to-service", help="--from-log: only to this service's queue")
    replay.add_argument("--limit", type=_positive, help="--from-parking: move at most N")
    replay.add_argument("--dry-run", action="store_true", help="--from-parking: only count")
    replay.set_defaults(func=_replay)

    parked = commands.add_parser("parked", help="list a service's parked messages (kept)")
    parked.add_argument("service")
    parked.add_argument("--limit", type=_positive, default=20)
    parked.set_defaults(func=_parked)

    export = commands.add_parser("export-schemas", help="write schemas/events/**.json")
    export.add_argument("--check", action="store_true", help="only check; exit 1 on any finding")
    export.set_defaults(func=_export_schemas)


def run(args: argparse.Namespace, context: CliContext) -> int:
    """Run a parsed ``segue events ...`` command; errors become a message and exit code 1.

    :param args: the parsed command line.
    :param context: the workflow (registry, database, schemas).
    """
    func: Runner = args.func
    try:
        return func(args, context)
    except Exception as exc:  # the CLI's boundary: one clear line instead of a traceback
        print(f"segue events {args.events_command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _timeline(args: argparse.Namespace, context: CliContext) -> int:
    from segue.eventlog.render import render_timeline
    from segue.eventlog.store import eventlog_engine, order_timeline
    from segue.store.engine import session_scope

    with session_scope(eventlog_engine(context.database_url())) as session:
        records = order_timeline(session, args.order_id)
        print(render_timeline(args.order_id, records))
    return 0 if records else 1


def _replay(args: argparse.Namespace, context: CliContext) -> int:
    from segue.bus.connection import connect
    from segue.eventlog import replay
    from segue.settings import get_settings

    settings = get_settings()
    if args.from_parking:
        if args.order or args.event_type or args.to_service:
            print("--order/--type/--to-service apply to --from-log only", file=sys.stderr)
            return 2
        with connect(settings.amqp_url) as connection:
            moved = replay.replay_parked(
                connection, args.from_parking, limit=args.limit, dry_run=args.dry_run
            )
        verb = "would move" if args.dry_run else "moved"
        print(f"{verb} {moved} parked message(s) back to segue.{args.from_parking}")
        return 0
    if args.limit or args.dry_run:
        print("--limit/--dry-run apply to --from-parking only", file=sys.stderr)
        return 2
    from segue.eventlog.store import eventlog_engine
    from segue.store.engine import session_scope

    engine = eventlog_engine(context.database_url())
    with session_scope(engine) as session, connect(settings.amqp_url) as connection:
        count = replay.replay_from_log(
            session,
            connection,
            context.registry(),
            correlation_id=args.order,
            event_type=args.event_type,
            to_service=args.to_service,
        )
    where = f"queue segue.{args.to_service}" if args.to_service else "segue.events"
    print(f"republished {count} event(s) to {where}")
    return 0


def _parked(args: argparse.Namespace, context: CliContext) -> int:
    from segue.bus.connection import connect
    from segue.eventlog.replay import list_parked
    from segue.settings import get_settings

    with connect(get_settings().amqp_url) as connection:
        messages = list_parked(connection, args.service, args.limit)
    print(f"{len(messages)} parked message(s) shown for {args.service} (limit {args.limit})")
    for m in messages:
        what = m.event_type or "(no type)"
        print(f"- {m.parked_at or '?'}  {m.code or '?'}  {what}  id={m.event_id or '?'}")
        print(f"    {m.reason}")
    return 0


def _export_schemas(args: argparse.Namespace, context: CliContext) -> int:
    from segue.events import schemas

    registry, root = context.registry(), context.schemas_root()
    result = schemas.check_schemas(registry, root)
    for line in result.breaks:
        print(f"BREAK {line}")
    if args.check:
        for line in result.out_of_date:
            print(f"OUT OF DATE {line}")
        for line in result.new:
            print(f"NEW (not committed) {line}")
        if result.ok:
            print("schemas are up to date")
        return 0 if result.ok else 1
    if result.breaks:
        print("not exported: a breaking change needs a new schema version", file=sys.stderr)
        return 1
    for path in schemas.export_schemas(registry, root):
        print(f"wrote {path}")
    return 0
