"""Upgrade, inspect and check databases against their components' migrations.

Every change runs in one transaction under a PostgreSQL advisory lock, so services and tasks
starting at once take turns: the first migrates, the others find the database at head.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, text

from segue.migrations.component import Component, alembic_config
from segue.migrations.environment import configure_options

log = logging.getLogger(__name__)

SCHEMA_LOCK_ID = 0x5E6E_0001  # PostgreSQL advisory lock serializing concurrent schema changes

Progress = Callable[[str], None]


class MigrationError(RuntimeError):
    """A database the migrations cannot safely take over or upgrade."""


def upgrade(
    engine: Engine, components: Sequence[Component], *, progress: Progress | None = None
) -> dict[str, str]:
    """Bring each component of ``engine``'s database to its head revision.

    A component whose legacy tables are all there without a version table (a database made by
    ``create_all`` before migrations) is stamped at its base revision first, then upgraded.

    :param engine: the business store.
    :param components: what to migrate, in order.
    :param progress: called with one line per component (default: logged at INFO).
    :returns: the revision of each component afterwards, by name.
    """
    say = progress or log.info
    revisions: dict[str, str] = {}
    with engine.begin() as connection:
        _lock(connection)
        for component in components:
            revisions[component.name] = _upgrade_one(connection, component, say)
    return revisions


def current(engine: Engine, components: Sequence[Component]) -> dict[str, str | None]:
    """The revision each component's version table records (None: not migrated yet).

    :param engine: the database to read.
    :param components: whose revisions to read; the result is keyed by their names.
    """
    with engine.connect() as connection:
        return {component.name: revision_of(connection, component) for component in components}


def heads(components: Sequence[Component]) -> dict[str, str | None]:
    """The head revision of each component's migrations.

    :param components: whose script folders to read; the result is keyed by their names.
    """
    return {component.name: head_of(component) for component in components}


def check(engine: Engine, components: Sequence[Component]) -> list[str]:
    """What differs between the models and the migrations, one line per difference.

    The database must be at head (else that is the one problem reported for the component);
    then Alembic's autogenerate compare, as ``alembic check`` does, finds the tables, columns,
    types, indexes and constraints the models have and the migrations do not, or the reverse.
    An empty list means they agree.

    :param engine: a database upgraded with the migrations (read only).
    :param components: the components to check, in order.
    """
    problems: list[str] = []
    with engine.connect() as connection:
        for component in components:
            revision, head = revision_of(connection, component), head_of(component)
            if revision != head:
                problems.append(
                    f"{component.name}: database at {revision or 'no revision'}, migrations at "
                    f"{head}; run `segue db upgrade` first"
                )
                continue
            context = MigrationContext.configure(connection, opts=configure_options(component))
            diffs = compare_metadata(context, component.metadata)
            problems.extend(f"{component.name}: {describe(diff)}" for diff in diffs)
    return problems


def revision(
    engine: Engine, component: Component, message: str, *, autogenerate: bool = True
) -> str:
    """Write a new revision file for ``component``; returns its path.

    With ``autogenerate`` the operations are what the models have beyond ``engine``'s database,
    which must be at head: use a scratch database, upgraded first.
    """
    with engine.begin() as connection:
        _lock(connection)
        at, head = revision_of(connection, component), head_of(component)
        if autogenerate and at != head:
            raise MigrationError(
                f"{component.name}: the scratch database is at {at or 'no revision'}, not at "
                f"head {head}: run `segue db upgrade --url <it>` first"
            )
        script = command.revision(
            alembic_config(component, connection), message=message, autogenerate=autogenerate
        )
    scripts = script if isinstance(script, list) else [script]
    return str(scripts[0].path)  # type: ignore[union-attr]


def revision_of(connection: Connection, component: Component) -> str | None:
    """The revision recorded in ``component``'s version table (None: no table or no row)."""
    context = MigrationContext.configure(
        connection, opts={"version_table": component.version_table}
    )
    return context.get_current_revision()


def head_of(component: Component) -> str | None:
    """The single head revision of ``component``; None before its first revision.

    Several heads (two branches of work) need a merge revision first: that is an error here.
    """
    found = component.script().get_heads()
    if len(found) > 1:
        raise MigrationError(f"{component.name}: several head revisions {found}; merge them")
    return found[0] if found else None


def describe(diff: Any) -> str:
    """One line for one autogenerate difference, naming the table and column.

    :param diff: an item of ``compare_metadata``'s result: a tuple, or a list of them.
    """
    if isinstance(diff, list):
        return "; ".join(describe(item) for item in diff)
    kind, *rest = diff
    if kind in ("add_column", "remove_column"):
        _schema, table, column = rest
        return f"{kind} {table}.{column.name}"
    if kind.startswith("modify_"):
        _schema, table, column, _existing, old, new = rest
        return f"{kind} {table}.{column}: {old!r} -> {new!r}"
    target = rest[0]
    table = getattr(target, "table", None)
    where = f" on {table.name}" if getattr(table, "name", None) else ""
    return f"{kind} {getattr(target, 'name', target)}{where}"


def _upgrade_one(connection: Connection, component: Component, say: Progress) -> str:
    head = head_of(component)
    if head is None:
        raise MigrationError(f"{component.name} has no migrations in {component.script_location}")
    at = revision_of(connection, component)
    if at is None:
        at = _adopt(connection, component, say)
    if at == head:
        say(f"{component.name} is up to date ({head})")
        return head
    say(f"upgrading {component.name} from {at or 'nothing'} to {head} ...")
    command.upgrade(alembic_config(component, connection), "head")
    return head


def _adopt(connection: Connection, component: Component, say: Progress) -> str | None:
    """Stamp the base revision on a database whose tables predate migrations; else None."""
    legacy = set(component.legacy_tables)
    present = legacy & set(inspect(connection).get_table_names())
    if not present:
        return None
    missing = sorted(legacy - present)
    if missing:
        raise MigrationError(
            f"{component.name}: tables {sorted(present)} exist without the version table "
            f"{component.version_table}, but {missing} are missing; this is not a database "
            "made by an earlier Segue, so it is left alone"
        )
    base = component.script().get_base()
    assert base is not None  # a component with legacy tables has a baseline revision
    say(f"stamping {component.name} at {base} (its tables were made before migrations)")
    command.stamp(alembic_config(component, connection), base)
    return base


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK_ID})
