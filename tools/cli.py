"""The project's ``segue`` command: the library's commands with the payment workflow plugged in,
plus the developer launcher (``segue up`` / ``down`` / ``init-db``) and the operator's
``segue orders reconcile ORDER_ID`` (``tools.orders_cli``).

``segue`` the library (``segue.cli``) knows no workflow; this module tells it ours: the business
database ``segue up`` uses, the payment events, the committed schemas of this repository and
the migration components of its business store.
"""

from __future__ import annotations

from collections.abc import Sequence

from segue.cli import CliContext, build_parser, run
from tools.airflow_stack import PROJECT_ROOT
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

    return CliContext(
        database_url=database_url,
        registry=registry,
        schemas_root=lambda: PROJECT_ROOT,
        components=components,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the library's or the launcher's command."""
    parser, commands = build_parser()
    commands.add_parser("up", help="start the gateway, the event path and Airflow").set_defaults(
        run=_up
    )
    commands.add_parser("down", help="stop what `segue up` started").set_defaults(run=_down)
    init = commands.add_parser("init-db", help="migrate the business store and seed the catalog")
    init.add_argument("--url", help="database URL (default: the one `segue up` uses)")
    init.set_defaults(run=_init_db)
    add_orders_commands(commands)
    args = parser.parse_args(argv)
    return run(args, project_context())


def _up(_args: object, _context: CliContext) -> int:
    from tools import up  # imported late: keeps `segue --help` fast

    return up.up()


def _down(_args: object, _context: CliContext) -> int:
    from tools import up

    return up.down()


def _init_db(args, context: CliContext) -> int:  # type: ignore[no-untyped-def]
    from tools import up

    up.init_business_store(args.url or context.database_url())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
