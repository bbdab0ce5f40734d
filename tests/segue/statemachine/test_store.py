"""The saga store on every write path (SQLite Core, PostgreSQL Core, PostgreSQL raw CTE): the
version check rejects a stale move without writing its audit record, creation is idempotent,
and ``apply_many`` saves the good moves of a batch while rejecting the stale ones."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from segue.statemachine.store import ConcurrentTransition, Instance, Move, SagaStore
from segue.store.engine import build_engine


def open_store(request: pytest.FixtureRequest, tmp_path, kind: str) -> Iterator[SagaStore]:
    if kind == "sqlite":
        engine: Engine = build_engine(f"sqlite:///{tmp_path / 'sagas.db'}")
    else:
        engine = build_engine(request.getfixturevalue("pg_url"))
    store = SagaStore(engine)
    store.raw_postgres = kind == "postgres-raw"
    yield store
    store.close()
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres-core", "postgres-raw"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[SagaStore]:
    yield from open_store(request, tmp_path, request.param)


@pytest.fixture(params=["postgres-core", "postgres-raw"])
def pg_store(request: pytest.FixtureRequest, tmp_path) -> Iterator[SagaStore]:
    """PostgreSQL only: one SQLite file serializes writers, so it cannot race."""
    yield from open_store(request, tmp_path, request.param)


def new_instance(store: SagaStore, state: str = "A") -> Instance:
    instance = Instance(
        id=f"i-{uuid.uuid4().hex[:12]}",
        machine="m",
        machine_version=1,
        state=state,
        status="running",
        data={"amount": "10.00", "items": [{"sku": "SKU-MUG"}]},
        context={"visits": {state: 1}},
        version=1,
    )
    assert store.create(instance, "test")
    return store.load(instance.id)


def step(to_state: str, event: str = "done") -> Move:
    return Move(to_state, "running", event, 1, {"step": to_state}, {"visits": {to_state: 1}})


def events(store: SagaStore, instance_id: str) -> list[str]:
    return [row["event"] for row in store.audit_trail(instance_id)]


def test_the_write_path_matches_the_backend(store):
    from segue.statemachine.store_core import CoreWriter
    from segue.statemachine.store_postgres import PostgresWriter

    new_instance(store)
    expected = PostgresWriter if store.raw_postgres else CoreWriter
    assert isinstance(store._writer(), expected)


def test_create_is_idempotent_and_records_start_once(store):
    instance = new_instance(store)
    assert not store.create(instance, "again")
    assert events(store, instance.id) == ["start"]
    assert store.load(instance.id).data == {"amount": "10.00", "items": [{"sku": "SKU-MUG"}]}


def test_a_stale_move_is_rejected_and_leaves_no_audit_record(store):
    loaded = new_instance(store)
    moved = store.apply(loaded, step("B"), "winner")
    assert (moved.state, moved.version) == ("B", 2)
    with pytest.raises(ConcurrentTransition):
        store.apply(loaded, step("C", "late"), "loser")
    current = store.load(loaded.id)
    assert (current.state, current.version, current.data) == ("B", 2, {"step": "B"})
    trail = store.audit_trail(loaded.id)
    assert [(r["from_state"], r["to_state"], r["actor"]) for r in trail] == [
        (None, "A", "test"),
        ("A", "B", "winner"),
    ]


def test_wake_at_and_error_round_trip(store):
    loaded = new_instance(store)
    wake_at = loaded.created_at.replace(microsecond=0)
    move = Move("A", "running", "retry", 2, loaded.data, {}, wake_at, "Gateway: down")
    store.apply(loaded, move, "test")
    current = store.load(loaded.id)
    assert (current.wake_at, current.error, current.version) == (wake_at, "Gateway: down", 2)
    assert store.audit_trail(loaded.id)[-1]["error"] == "Gateway: down"


def test_apply_many_saves_the_good_moves_and_rejects_the_stale_one(store):
    first, stale, third = (new_instance(store) for _ in range(3))
    store.apply(stale, step("X", "elsewhere"), "other-worker")
    results = store.apply_many(
        [(first, step("B")), (stale, step("B")), (third, step("C"))], "batch"
    )
    assert [r.state if r else None for r in results] == ["B", None, "C"]
    assert [r.version if r else None for r in results] == [2, None, 2]
    assert store.load(first.id).state == "B" and store.load(third.id).state == "C"
    assert (store.load(stale.id).state, store.load(stale.id).version) == ("X", 2)
    assert events(store, stale.id) == ["start", "elsewhere"]
    assert events(store, first.id) == ["start", "done"]
    assert store.apply_many([], "batch") == []


def test_apply_many_takes_one_move_per_instance(store):
    instance = new_instance(store)
    with pytest.raises(ValueError, match="at most one entry"):
        store.apply_many([(instance, step("B")), (instance, step("C"))], "batch")
    assert store.load(instance.id).version == 1


def test_racing_threads_apply_one_transition(pg_store):
    store = pg_store
    loaded = new_instance(store)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def race(name: str) -> None:
        barrier.wait()
        try:
            store.apply(loaded, step(name), name)
            outcomes.append("won")
        except ConcurrentTransition:
            outcomes.append("lost")
        finally:
            store.close()

    threads = [threading.Thread(target=race, args=(f"W{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    assert len(store.audit_trail(loaded.id)) == 2
    assert store.load(loaded.id).version == 2


def test_a_broken_connection_is_replaced(store):
    instance = new_instance(store)
    writer = store._writer()
    writer.close()
    assert store.load(instance.id).id == instance.id
    assert store._writer() is not writer


def test_synchronous_commit_off_applies_to_the_raw_connection(pg_url):
    engine = build_engine(pg_url)
    store = SagaStore(engine, synchronous_commit=False)
    writer = store._writer()
    assert writer.connection.execute("SHOW synchronous_commit").fetchone()[0] == "off"
    store.close()
    engine.dispose()


def test_create_many_creates_the_absent_and_keeps_the_existing(store):
    existing = new_instance(store)
    fresh = [
        Instance(f"n-{uuid.uuid4().hex[:12]}", "m", 1, "A", "running", {"n": n}, {}, 1)
        for n in range(3)
    ]
    again = Instance(existing.id, "m", 1, "Z", "running", {"clobber": True}, {}, 1)
    created = store.create_many([*fresh, again], "batch")
    assert created == {i.id for i in fresh}
    assert [store.load(i.id).data for i in fresh] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert store.load(existing.id).state == "A"
    assert events(store, existing.id) == ["start"]
    assert [events(store, i.id) for i in fresh] == [["start"]] * 3
    assert store.create_many([], "batch") == set()
    with pytest.raises(ValueError, match="at most one entry"):
        store.create_many([fresh[0], fresh[0]], "batch")


def test_a_note_joins_the_callers_transaction_and_moves_nothing(store):
    instance = new_instance(store)
    with store.engine.connect() as connection:
        store.note(connection, instance, "late_charge_refunded", "replies")
        connection.rollback()  # the caller's work failed: its note goes with it
    assert events(store, instance.id) == ["start"]

    with store.engine.begin() as connection:
        store.note(connection, instance, "late_charge_refunded", "replies", error="why")
    assert events(store, instance.id) == ["start", "late_charge_refunded"]
    note = store.audit_trail(instance.id)[-1]
    assert (note["from_state"], note["to_state"], note["actor"]) == ("A", "A", "replies")
    assert note["error"] == "why"
    assert store.load(instance.id) == instance  # neither state nor version moved
