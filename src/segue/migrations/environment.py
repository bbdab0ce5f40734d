"""The body of every component's ``env.py``: run Alembic on the connection Segue hands it.

Each script folder's ``env.py`` is two lines that call :func:`run_environment`, so every
component migrates the same way: its own version table, only its own tables compared by
autogenerate, batch mode (SQLite can then alter tables too).
"""

from __future__ import annotations

from typing import Any

from segue.migrations.component import Component


def include_name_for(component: Component) -> Any:
    """An ``include_name`` hook: autogenerate looks at ``component``'s tables only.

    Other components' tables and version tables share the database; without this filter a
    revision would propose dropping them.
    """

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        if type_ == "table":
            return name is not None and component.owns(name)
        return True

    return include_name


def configure_options(component: Component) -> dict[str, Any]:
    """The ``context.configure`` options shared by migrations, ``check`` and revisions.

    :param component: whose metadata, version table and tables the options name.
    """
    return {
        "target_metadata": component.metadata,
        "version_table": component.version_table,
        "include_name": include_name_for(component),
        "compare_type": True,
        "render_as_batch": True,
    }


def run_environment(context: Any) -> None:
    """Run the migrations Alembic asked for (``context`` is ``alembic.context``).

    :param context: Alembic's environment context; its config carries ``component`` and
        ``connection`` attributes set by :mod:`segue.migrations.runner`.
    """
    attributes = context.config.attributes
    component = attributes.get("component")
    connection = attributes.get("connection")
    if component is None or connection is None:
        raise RuntimeError(
            "this migration folder is driven by Segue: run `segue db upgrade` or "
            "`segue db revision`, not `alembic` with an ini file"
        )
    context.configure(connection=connection, **configure_options(component))
    with context.begin_transaction():
        context.run_migrations()
