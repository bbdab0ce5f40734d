"""A business store made by the last commit before migrations upgrades with every row intact.

The old tree is the repository's own history (``git archive``); its code builds the database
with ``create_all`` and fills every table, then today's migrations take it over.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, inspect, select

from include.payments.database import COMPONENTS
from segue.migrations import check, current, heads, upgrade
from segue.migrations.component import alembic_config
from segue.store.engine import build_engine
from tools.sandbox import fresh_database

REPO = Path(__file__).resolve().parents[3]
BEFORE_MIGRATIONS = "dbc2e56"  # the commit before the layout move, still on create_all
OLD_TABLES = {
    "inbox", "outbox", "dead_letters", "event_log", "saga_instances", "saga_transitions",
    "orders", "order_placements", "stock", "reservations", "charges", "refunds", "receipts",
    "receipt_cancellations", "shipping_notices", "payment_followups",
}  # fmt: skip


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository at BEFORE_MIGRATIONS, extracted from git history."""
    target = tmp_path_factory.mktemp("old")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE_MIGRATIONS],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.fail(
            f"git history is needed: `git archive {BEFORE_MIGRATIONS}` in {REPO} failed "
            f"({archive.stderr.decode().strip()}); clone the repository with its history"
        )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


@pytest.fixture
def legacy_db(old_tree: Path) -> Iterator[tuple[Engine, set[str]]]:
    """A fresh database built and filled by the old tree's code; the tables it made."""
    with fresh_database(f"segue_legacy_{os.getpid()}") as url:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONPATH": f"{old_tree / 'plugins'}:{old_tree}",
        }
        script = Path(__file__).with_name("legacy_store.py")
        done = subprocess.run(
            [sys.executable, str(script), url, str(old_tree / "plugins" / "segue")],
            cwd=old_tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        made = set(done.stdout.strip().split(","))
        engine = build_engine(url)
        try:
            yield engine, made
        finally:
            engine.dispose()


def old_tables(engine: Engine, names: set[str]) -> dict[str, Table]:
    """The tables as the old code made them (reflected), so later columns are left out."""
    metadata = MetaData()
    return {name: Table(name, metadata, autoload_with=engine) for name in sorted(names)}


def snapshot(engine: Engine, tables: dict[str, Table]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in ``tables`` (their old columns), in primary-key order."""
    rows = {}
    with engine.connect() as connection:
        for name, table in tables.items():
            query = select(table).order_by(*table.primary_key.columns)
            rows[name] = [tuple(row) for row in connection.execute(query)]
    return rows


def test_old_store_upgrades_to_head_with_every_row(legacy_db: tuple[Engine, set[str]]) -> None:
    engine, made = legacy_db
    assert made == OLD_TABLES
    tables = old_tables(engine, made)
    before = snapshot(engine, tables)
    assert all(len(rows) == 3 for rows in before.values()), before

    said: list[str] = []
    assert upgrade(engine, COMPONENTS, progress=said.append) == heads(COMPONENTS)

    stamped = [line for line in said if line.startswith("stamping ")]
    assert len(stamped) == len([c for c in COMPONENTS if c.legacy_tables]), said
    for component in (c for c in COMPONENTS if not c.legacy_tables):  # born with migrations
        assert (
            f"upgrading {component.name} from nothing to {heads([component])[component.name]} ..."
            in said
        )
    assert current(engine, COMPONENTS) == heads(COMPONENTS)
    assert snapshot(engine, tables) == before
    assert check(engine, COMPONENTS) == []  # the old tables are what the models declare

    again: list[str] = []
    upgrade(engine, COMPONENTS, progress=again.append)
    assert again == [f"{c.name} is up to date ({heads([c])[c.name]})" for c in COMPONENTS]
    assert snapshot(engine, tables) == before


def test_baselines_make_exactly_the_old_tables(legacy_db: tuple[Engine, set[str]]) -> None:
    """Columns, types, nullability, keys, indexes, unique and check constraints, names: a
    database migrated from nothing to the baselines equals the one the old ``create_all`` made
    (later revisions, and components born with migrations, add to it)."""
    legacy, _ = legacy_db
    with fresh_database(f"segue_legacy_fresh_{os.getpid()}") as url:
        fresh = build_engine(url)
        try:
            upgrade_to_baselines(fresh)
            assert describe_schema(fresh) == describe_schema(legacy)
        finally:
            fresh.dispose()


def upgrade_to_baselines(engine: Engine) -> None:
    """Every component the old store had, migrated from nothing to its base revision only
    (later revisions, and components born later, are not part of the old schema)."""
    with engine.begin() as connection:
        for component in COMPONENTS:
            if component.legacy_tables:
                [base] = component.script().get_bases()
                command.upgrade(alembic_config(component, connection), base)


def describe_schema(engine: Engine) -> dict[str, dict[str, Any]]:
    """What the catalog says about every business table (version tables left out)."""
    inspector = inspect(engine)
    described = {}
    for name in sorted(inspector.get_table_names()):
        if name.startswith("alembic_version"):
            continue
        described[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(name)
            ],
            "pk": inspector.get_pk_constraint(name),
            "fks": inspector.get_foreign_keys(name),
            "indexes": sorted(inspector.get_indexes(name), key=lambda i: i["name"]),
            "uniques": sorted(inspector.get_unique_constraints(name), key=lambda u: u["name"]),
            "checks": sorted(inspector.get_check_constraints(name), key=lambda c: c["name"]),
        }
    return described
