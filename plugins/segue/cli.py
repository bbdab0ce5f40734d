"""The ``segue`` command line: run the project locally and manage its business store."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from segue.eventlog.cli import add_event_commands
from segue.eventlog.cli import run as run_event_command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segue", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the gateway and Airflow in the background")
    commands.add_parser("down", help="stop what `segue up` started")
    db = commands.add_parser("init-db", help="create the business tables and seed the catalog")
    db.add_argument("--url", help="database URL (default: SEGUE_DATABASE_URL)")
    add_event_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "events":
        return run_event_command(args)

    from segue.local import up as local  # imported late: keeps `segue --help` fast

    if args.command == "up":
        return local.up()
    if args.command == "down":
        return local.down()
    from segue.settings import get_settings

    local.init_business_store(args.url or get_settings().database_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
