"""segue.migrations on real PostgreSQL: check against head and against a drifted model, one
component alone, concurrent starters, a half-legacy database refused, and ``segue db ...``."""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, MetaData, String, Text, inspect, text

from include.payments import tables as payment_tables
from include.payments.database import COMPONENTS
from segue.cli import CliContext, main
from segue.eventlog.store import COMPONENT as EVENTLOG
from segue.migrations import Component, MigrationError, check, current, heads, upgrade
from segue.migrations.library import library_components
from segue.migrations.runner import revision
from segue.statemachine.records import COMPONENT as STATEMACHINE
from segue.statemachine.store import SagaStore
from segue.store.engine import NAMING_CONVENTION, build_engine
from tools.sandbox import fresh_database


@pytest.fixture
def empty_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test."""
    with fresh_database(f"segue_mig_{os.getpid()}_{uuid.uuid4().hex[:6]}") as url:
        yield url


@pytest.fixture
def empty_db(empty_url: str) -> Iterator[Engine]:
    engine = build_engine(empty_url)
    yield engine
    engine.dispose()


def drifted(component: Component, table: str, *extra: Column) -> Component:
    """``component`` with a copy of its metadata where ``table`` has ``extra`` columns."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    for each in component.metadata.tables.values():
        each.to_metadata(metadata)
    for column in extra:
        metadata.tables[table].append_column(column)
    return dataclasses.replace(component, metadata=metadata)


def test_models_match_migrations_at_head(engine: Engine) -> None:
    assert current(engine, COMPONENTS) == heads(COMPONENTS)
    assert check(engine, COMPONENTS) == []


def test_check_names_the_table_and_column_a_model_adds(engine: Engine) -> None:
    model = drifted(payment_tables.COMPONENT, "orders", Column("note", Text, nullable=True))
    assert check(engine, [model]) == ["include.payments: add_column orders.note"]


def test_check_names_a_changed_type(engine: Engine) -> None:
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    for each in STATEMACHINE.metadata.tables.values():
        each.to_metadata(metadata)
    metadata.tables["saga_transitions"].columns["actor"].type = String(300)
    problems = check(engine, [dataclasses.replace(STATEMACHINE, metadata=metadata)])
    assert len(problems) == 1
    assert problems[0].startswith("segue.statemachine: modify_type saga_transitions.actor")


def test_check_reports_a_database_behind_head(empty_db: Engine) -> None:
    assert check(empty_db, [EVENTLOG]) == [
        f"segue.eventlog: database at no revision, migrations at {heads([EVENTLOG])[EVENTLOG.name]}"
        "; run `segue db upgrade` first"
    ]


def test_one_component_gets_only_its_tables(empty_db: Engine) -> None:
    said: list[str] = []
    upgrade(empty_db, [STATEMACHINE], progress=said.append)
    assert set(inspect(empty_db).get_table_names()) == {
        "saga_instances",
        "saga_transitions",
        "alembic_version_segue_statemachine",
    }
    head = heads([STATEMACHINE])["segue.statemachine"]
    assert said == [f"upgrading segue.statemachine from nothing to {head} ..."]
    assert current(empty_db, library_components()) == {
        "segue.bus": None,
        "segue.dead_letters": None,
        "segue.statemachine": head,
        "segue.eventlog": None,
        "segue.rollout": None,
        "segue.shadow": None,
    }


def test_saga_store_on_sqlite_migrates_its_component_only(tmp_path: Path) -> None:
    engine = build_engine(f"sqlite:///{tmp_path / 'sagas.db'}")
    SagaStore(engine)
    assert set(inspect(engine).get_table_names()) == {
        "saga_instances",
        "saga_transitions",
        "alembic_version_segue_statemachine",
    }


def test_concurrent_starters_take_turns(empty_url: str) -> None:
    engines = [build_engine(empty_url) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(engines))

    def starter(engine: Engine) -> None:
        start.wait()
        try:
            upgrade(engine, COMPONENTS)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=starter, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert current(engines[0], COMPONENTS) == heads(COMPONENTS)
    for engine in engines:
        engine.dispose()


def test_half_legacy_database_is_left_alone(empty_db: Engine) -> None:
    with empty_db.begin() as connection:
        connection.execute(text("CREATE TABLE inbox (consumer varchar(100))"))
    with pytest.raises(MigrationError, match=r"segue.bus: tables \['inbox'\].*\['outbox'\]"):
        upgrade(empty_db, COMPONENTS[:1])
    assert "alembic_version_segue_bus" not in inspect(empty_db).get_table_names()


def test_db_commands(empty_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    context = CliContext(
        database_url=lambda: empty_url,
        registry=lambda: pytest.fail("db commands need no registry"),
        schemas_root=lambda: pytest.fail("db commands need no schemas"),
        components=lambda: [STATEMACHINE, EVENTLOG],
    )
    head = heads([EVENTLOG])["segue.eventlog"]

    assert main(["db", "current"], context=context) == 0
    assert "segue.eventlog      none  (behind, head" in capsys.readouterr().out
    assert main(["db", "check"], context=context) == 1
    assert "run `segue db upgrade` first" in capsys.readouterr().err

    assert main(["db", "upgrade", "--component", "segue.eventlog"], context=context) == 0
    assert f"upgrading segue.eventlog from nothing to {head} ..." in capsys.readouterr().out
    assert main(["db", "check", "--component", "segue.eventlog"], context=context) == 0
    assert "models match migrations (segue.eventlog)" in capsys.readouterr().out

    assert main(["db", "upgrade"], context=context) == 0
    out = capsys.readouterr().out
    assert f"segue.eventlog is up to date ({head})" in out
    assert "upgrading segue.statemachine from nothing to" in out
    assert main(["db", "current"], context=context) == 0
    assert f"segue.eventlog      {head}  (head)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown component"):
        main(["db", "upgrade", "--component", "include.payments"], context=context)


def test_revision_autogenerates_what_the_model_adds(empty_db: Engine, tmp_path: Path) -> None:
    """The developer's path: a scratch database at head, a model change, a new revision that
    holds the change and that upgrade then applies (on a copy of the migration folder)."""
    folder = tmp_path / "migrations"
    shutil.copytree(EVENTLOG.script_location, folder, ignore=shutil.ignore_patterns("__pycache__"))
    model = drifted(EVENTLOG, "event_log", Column("tenant", String(40), nullable=True))
    model = dataclasses.replace(model, script_location=folder)
    upgrade(empty_db, [EVENTLOG])
    with pytest.raises(MigrationError, match="not at head"):
        revision(build_engine(f"sqlite:///{tmp_path / 'behind.db'}"), model, "behind")

    path = Path(revision(empty_db, model, "event_log.tenant"))
    assert path.parent == folder / "versions"
    source = path.read_text()
    assert "add_column(sa.Column('tenant', sa.String(length=40)" in source.replace('"', "'")
    assert check(empty_db, [model]) != []
    upgrade(empty_db, [model])
    assert check(empty_db, [model]) == []
    assert "tenant" in {c["name"] for c in inspect(empty_db).get_columns("event_log")}
