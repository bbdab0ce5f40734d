"""``segue events ...`` through ``add_event_commands`` on a parser like the ``segue`` CLI's."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from sqlalchemy import Engine

from include.payments.events import PAYMENT_EVENTS
from include.workflow import PROJECT_ROOT
from segue.bus.topology import DEAD, parking_queue_name, queue_name
from segue.cli import CliContext
from segue.eventlog.cli import add_event_commands, run
from segue.eventlog.store import record_event
from segue.events import schemas
from segue.events.amqp import to_amqp
from segue.events.envelope import Envelope
from segue.settings import get_settings
from segue.store.engine import session_scope

Chain = Callable[..., list[Envelope]]


@pytest.fixture(autouse=True)
def settings(pg_url: str, amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SEGUE_DATABASE_URL", pg_url)
    monkeypatch.setenv("SEGUE_AMQP_URL", amqp_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


SCHEMAS_ROOT = {"path": PROJECT_ROOT}  # the schema_tree fixture points it at a copy


def segue(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="segue")
    add_event_commands(parser.add_subparsers(dest="command", required=True))
    context = CliContext(
        database_url=lambda: get_settings().database_url,
        registry=lambda: PAYMENT_EVENTS,
        schemas_root=lambda: SCHEMAS_ROOT["path"],
    )
    return run(parser.parse_args(argv), context)


@pytest.fixture
def logged(log_engine: Engine, order_events: Chain) -> list[Envelope]:
    chain = order_events()
    with session_scope(log_engine) as session:
        for envelope in chain:
            record_event(session, envelope)
    return chain


def test_timeline(logged: list[Envelope], capsys: pytest.CaptureFixture[str]) -> None:
    assert segue(["events", "timeline", logged[0].subject]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Order {logged[0].subject}: 4 events over 1.500s"
    assert [line.split()[1] for line in out[1:]] == [
        "OrderPlaced",
        "OrderValidated",
        "InventoryReserved",
        "ChargeCompleted",
    ]


def test_timeline_of_an_unknown_order_exits_1(log_engine: Engine, capsys: Any) -> None:
    assert segue(["events", "timeline", "ord-none"]) == 1
    assert capsys.readouterr().out == "No events recorded for ord-none.\n"


def test_replay_from_log_to_a_service(
    logged: list[Envelope], make_service: Any, broker: Any, capsys: Any
) -> None:
    service = make_service()
    argv = ["events", "replay", "--from-log", "--order", logged[0].subject, "--to-service", service]
    assert segue(argv) == 0
    assert capsys.readouterr().out == f"republished 4 event(s) to queue segue.{service}\n"
    assert broker.wait_backlog(queue_name(service), 4) == 4
    argv = ["events", "replay", "--from-log", "--type", logged[1].type, "--to-service", service]
    assert segue(argv) == 0
    assert broker.wait_backlog(queue_name(service), 5) == 5


def park(connection: Connection, service: str, chain: list[Envelope]) -> None:
    from segue.bus.publisher import Publisher

    for envelope in chain:
        message = to_amqp(envelope)
        headers = {**message.headers, "x-segue-parked-code": "invalid_payload"}
        headers["x-segue-parked-reason"] = f"amount: bad {envelope.id[:4]}"
        Publisher(connection).publish_raw(
            message.body,
            exchange=DEAD,
            routing_key=queue_name(service),
            headers=headers,
            properties=message.properties,
        )


def test_parked_and_replay_from_parking(
    connection: Connection, make_service: Any, broker: Any, order_events: Chain, capsys: Any
) -> None:
    service, chain = make_service(), order_events()
    park(connection, service, chain)
    assert broker.wait_backlog(parking_queue_name(service), 4) == 4

    assert segue(["events", "parked", service, "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"3 parked message(s) shown for {service} (limit 3)\n")
    assert out.count("invalid_payload  segue.payments.") == 3
    assert f"amount: bad {chain[0].id[:4]}" in out
    assert broker.wait_backlog(parking_queue_name(service), 4) == 4

    assert segue(["events", "replay", "--from-parking", service, "--dry-run"]) == 0
    assert capsys.readouterr().out == f"would move 4 parked message(s) back to segue.{service}\n"
    assert segue(["events", "replay", "--from-parking", service, "--limit", "3"]) == 0
    assert capsys.readouterr().out == f"moved 3 parked message(s) back to segue.{service}\n"
    assert broker.wait_backlog(queue_name(service), 3) == 3
    assert broker.wait_backlog(parking_queue_name(service), 1) == 1


def test_errors_are_one_line_and_exit_1(connection: Connection, capsys: Any) -> None:
    assert segue(["events", "parked", "ghost-2"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "segue events parked: QueueMissing: queue segue.ghost-2.parked does not exist "
        "(is 'ghost-2' declared?)\n"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "replay", "--from-log", "--limit", "2"],
        ["events", "replay", "--from-parking", "svc", "--order", "o"],
    ],
)
def test_options_of_the_other_replay_source_exit_2(argv: list[str], capsys: Any) -> None:
    assert segue(argv) == 2
    assert "apply to" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["events", "replay"],
        ["events", "replay", "--from-log", "--from-parking", "svc"],
        ["events", "parked", "svc", "--limit", "0"],
        ["events"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        segue(argv)
    assert exited.value.code == 2


def test_export_schemas_check_passes_on_the_repository(capsys: Any) -> None:
    assert segue(["events", "export-schemas", "--check"]) == 0
    assert capsys.readouterr().out == "schemas are up to date\n"


@pytest.fixture
def schema_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the committed schemas that the CLI reads instead of the repository's."""
    shutil.copytree(PROJECT_ROOT / schemas.SCHEMA_DIR, tmp_path / schemas.SCHEMA_DIR)
    monkeypatch.setitem(SCHEMAS_ROOT, "path", tmp_path)
    return tmp_path / schemas.SCHEMA_DIR


def test_export_schemas_check_reports_breaks_new_and_stale_files(
    schema_tree: Path, capsys: Any
) -> None:
    charge = schema_tree / "segue.payments.ChargeFailed/v1.json"
    committed = json.loads(charge.read_text())
    committed["properties"]["retryable"] = {"type": "boolean"}  # as if the model dropped it
    charge.write_text(schemas.render(committed))
    (schema_tree / "segue.payments.ReceiptSent/v1.json").unlink()
    assert segue(["events", "export-schemas", "--check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "BREAK segue.payments.ChargeFailed v1: retryable: field removed (or renamed)",
        "OUT OF DATE segue.payments.ChargeFailed v1 "
        "(schemas/events/segue.payments.ChargeFailed/v1.json)",
        "NEW (not committed) segue.payments.ReceiptSent v1 "
        "(schemas/events/segue.payments.ReceiptSent/v1.json)",
    ]
    assert segue(["events", "export-schemas"]) == 1, "a break is never exported over"
    assert "needs a new schema version" in capsys.readouterr().err
    assert "retryable" in charge.read_text()


def test_export_schemas_writes_what_changed(schema_tree: Path, capsys: Any) -> None:
    (schema_tree / "segue.payments.ReceiptSent/v1.json").unlink()
    assert segue(["events", "export-schemas"]) == 0
    assert capsys.readouterr().out == (
        f"wrote {schema_tree / 'segue.payments.ReceiptSent/v1.json'}\n"
    )
    assert segue(["events", "export-schemas", "--check"]) == 0
