"""What a migration component is, and the Alembic configuration built for one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData


@dataclass(frozen=True)
class Component:
    """One independently versioned part of the business store.

    :param name: a dotted name shown to people and used on the command line (``segue.bus``).
    :param metadata: the MetaData of the component's models (its own declarative base).
    :param script_location: the Alembic folder (``env.py``, ``script.py.mako``, ``versions/``).
    :param version_table: the table that records the component's revision in a database.
    :param legacy_tables: the tables ``create_all`` made before migrations existed; a database
        holding all of them and no version table is stamped at the base revision (adopted)
        instead of migrated from scratch. Empty for a component born with migrations.
    """

    name: str
    metadata: MetaData
    script_location: Path
    version_table: str
    legacy_tables: tuple[str, ...] = ()

    def owns(self, table_name: str) -> bool:
        """True for the tables of this component's models (what its migrations manage).

        :param table_name: a table name as the database reports it.
        """
        return table_name in self.metadata.tables

    def script(self) -> ScriptDirectory:
        """The component's Alembic script directory (its revisions)."""
        return ScriptDirectory.from_config(alembic_config(self))


def alembic_config(component: Component, connection: Connection | None = None) -> Config:
    """An in-memory Alembic config for ``component``; ``env.py`` reads the attributes."""
    config = Config()
    config.set_main_option("script_location", str(component.script_location))
    config.set_main_option("path_separator", "os")
    config.attributes["component"] = component
    if connection is not None:
        config.attributes["connection"] = connection
    return config
