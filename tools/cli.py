"""The project's ``segue`` command: the library's commands with the payment workflow plugged in,
plus the developer launcher (``segue up`` / ``down`` / ``init-db``), the order intake's API
clients (``segue clients create|list|revoke``) and the operator's ``segue orders reconcile
ORDER_ID`` (``tools.orders_cli``).

``segue`` the library (``segue.cli``) knows no workflow; this module tells it ours: the business
database ``segue up`` uses, the payment events, the committed schemas of this repository and
the migration components of its business store, and the routing flag's paths.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from include.workflow import workflow_env
from segue.cli import CliContext, build_parser, run
from tools.airflow_stack import PROJECT_ROOT
from tools.chaos.cli import add_chaos_command
from tools.compare.cli import add_compare_command
from tools.orders_cli import add_orders_commands


def project_context() -> CliContext:
    """The library's CLI context for this repository's payment workflow."""

    def database_url() -> str:
        from tools.up import local_business_url

        return local_business_url()

    def registry():  # type: ignore[no-untyped-def]
        from include.payments.events import PAYMENT_EVENTS

        return PAYMENT_EVENTS

    def components():  # type: ignore[no-untyped-def]
        from include.payments.database import COMPONENTS

        return COMPONENTS

    def rollout():  # type: ignore[no-untyped-def]
        from include.workflow import ROLLOUT_BASELINE, ROLLOUT_FLAG, ROLLOUT_PATHS
        from segue.rollout import FlagSpec

        return FlagSpec(name=ROLLOUT_FLAG, paths=ROLLOUT_PATHS, baseline=ROLLOUT_BASELINE)

    return CliContext(
        database_url=database_url,
        registry=registry,
        schemas_root=lambda: PROJECT_ROOT,
        components=components,
        rollout=rollout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the library's or the launcher's command.

    This command is a process of the payment workflow, like the services ``segue up`` starts:
    the ``SEGUE_*`` variables that name the workflow to the library (``include.workflow``) are
    set for it unless the environment sets them already, so commands that read them
    (``rollout shadow-report``, the Rollout figures) find the workflow's providers.
    """
    for name, value in workflow_env().items():
        os.environ.setdefault(name, value)
    parser, commands = build_parser()
    start = commands.add_parser("up", help="start the gateway, the event path and Airflow")
    start.add_argument(
        "--executor",
        choices=["local", "celery"],
        default="local",
        help="Airflow's executor: local (airflow standalone) or celery (plus a Celery worker)",
    )
    start.set_defaults(run=_up)
    commands.add_parser("down", help="stop what `segue up` started").set_defaults(run=_down)
    init = commands.add_parser("init-db", help="migrate the business store and seed the catalog")
    init.add_argument("--url", help="database URL (default: the one `segue up` uses)")
    init.set_defaults(run=_init_db)
    add_client_commands(commands)
    add_orders_commands(commands)
    add_chaos_command(commands)
    add_compare_command(commands)
    args = parser.parse_args(argv)
    return run(args, project_context())


def add_client_commands(commands: Any) -> None:
    """``segue clients create|list|revoke``: the order intake's API clients.

    :param commands: the parser's subparsers.
    """
    clients = commands.add_parser("clients", help="API clients of the order intake (POST /orders)")
    actions = clients.add_subparsers(dest="clients_command", required=True)
    create = actions.add_parser("create", help="create a client and print its key (shown once)")
    create.add_argument("name", help="the client's name (letters, digits, '.', '_', '-')")
    create.set_defaults(run=_clients_create)
    listing = actions.add_parser("list", help="list clients (names, key prefixes, revoked)")
    listing.set_defaults(run=_clients_list)
    revoke = actions.add_parser("revoke", help="revoke a client's key (it stops working now)")
    revoke.add_argument("name", help="the client to revoke")
    revoke.set_defaults(run=_clients_revoke)
    for parser in (create, listing, revoke):
        parser.add_argument("--url", help="database URL (default: the one `segue up` uses)")


def _clients_session(args: Any, context: CliContext) -> Any:
    from include.payments.database import payments_engine
    from segue.store.engine import session_scope

    return session_scope(payments_engine(args.url or context.database_url()))


def _clients_create(args: Any, context: CliContext) -> int:
    from include.services.api_clients import ClientError, create_client

    try:
        with _clients_session(args, context) as session:
            key = create_client(session, args.name)
    except ClientError as exc:
        print(f"segue clients create: {exc}", file=sys.stderr)
        return 2
    print(key)
    print(
        f"client {args.name!r} created; this key is shown only once. Use it as\n"
        f"  curl -H 'Authorization: Bearer {key}' ...",
        file=sys.stderr,
    )
    return 0


def _clients_list(args: Any, context: CliContext) -> int:
    from include.services.api_clients import list_clients

    with _clients_session(args, context) as session:
        clients = list_clients(session)
    if not clients:
        print("no clients: create one with `segue clients create NAME`", file=sys.stderr)
    stamp = "%Y-%m-%d %H:%M:%S"
    for client in clients:
        state = f"revoked {client.revoked_at:{stamp}}" if client.revoked_at else "active"
        print(f"{client.name}\t{client.key_prefix}...\t{client.created_at:{stamp}}\t{state}")
    return 0


def _clients_revoke(args: Any, context: CliContext) -> int:
    from include.services.api_clients import ClientError, revoke_client

    try:
        with _clients_session(args, context) as session:
            changed = revoke_client(session, args.name)
    except ClientError as exc:
        print(f"segue clients revoke: {exc}", file=sys.stderr)
        return 2
    print(f"client {args.name!r} " + ("revoked" if changed else "was revoked already"))
    return 0


def _up(args, _context: CliContext) -> int:  # type: ignore[no-untyped-def]
    from tools import up  # imported late: keeps `segue --help` fast

    return up.up(executor=args.executor)


def _down(_args: object, _context: CliContext) -> int:
    from tools import up

    return up.down()


def _init_db(args, context: CliContext) -> int:  # type: ignore[no-untyped-def]
    from tools import up

    up.init_business_store(args.url or context.database_url())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
