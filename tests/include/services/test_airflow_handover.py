"""The hand-over service over a stand-in Airflow reached by the real client: one run per order
with the form's conf, a redelivery finds its run (409), outages retried, refusals parked."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from include.payment_dags import order_from_params
from include.payments.events import DagRunTriggered
from include.payments.models import Order
from include.payments.order_form import ORDER_FORM, conf_for
from include.services.airflow_handover import NAME, airflow_handover_service
from include.services.airflow_runs import AirflowRefused, AirflowRuns, AirflowUnavailable
from include.services.intake import place_order
from segue.bus.handlers import NotYet, Unprocessable
from segue.store.engine import session_scope
from segue.testing import InMemoryBus
from tests.include.services.fake_airflow import PASSWORD, FakeAirflow, fake_airflow
from tools.ports import unused_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    with fake_airflow() as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


def runs_for(url: str, clock: Clock, password: str = PASSWORD) -> AirflowRuns:
    return AirflowRuns(url, username="admin", password=password, timeout_seconds=5, clock=clock)


@pytest.fixture
def handover(clean_db, airflow, clock) -> Iterator[tuple[InMemoryBus, AirflowRuns]]:
    runs = runs_for(airflow.url, clock)
    yield InMemoryBus(clean_db, [airflow_handover_service(runs, max_attempts=10)]), runs
    runs.close()


def routed(engine, order: Order, path: str = "dag"):
    with session_scope(engine) as session:
        return place_order(session, order, path, client="test-client")


def test_conf_is_exactly_the_dag_form_and_the_run_processes_that_order(make_order):
    order = make_order()
    conf = conf_for(order)
    assert set(conf) == set(ORDER_FORM)
    assert conf["amount"] == "49.99"  # Decimal as a string, as the form takes it
    params = order_from_params({"params": conf, "run_id": "order__x"})
    assert params["order_id"] == order.order_id
    # The card's last four digits and brand are the gateway's: the run asks it by token.
    details = {"card_last4": order.card_last4, "card_brand": order.card_brand}
    assert Order.model_validate({**params, **details}) == order


def test_an_order_is_handed_over_once_and_a_redelivery_finds_its_run(
    handover, airflow, clean_db, make_order
):
    bus, _ = handover
    order = make_order()
    envelope = routed(clean_db, order, "saga")
    [first] = bus.deliver(NAME, envelope)
    [second] = bus.deliver(NAME, envelope)  # redelivered after a crash before the ack

    run_id = f"order__{order.order_id}"
    assert list(airflow.runs) == [("payment_state_machine", run_id)]
    body = airflow.runs[("payment_state_machine", run_id)]
    assert body["logical_date"] is None and "logical_date" in body
    assert body["conf"] == conf_for(order)
    assert envelope.correlationid in body["note"]
    assert first.data == DagRunTriggered(
        order_id=order.order_id,
        path="saga",
        dag_id="payment_state_machine",
        dag_run_id=run_id,
        already_existed=False,
    )
    assert second.data.already_existed is True and second.data.dag_run_id == run_id
    assert first.id == second.id  # the same cause emits the same event id
    assert first.correlationid == envelope.correlationid


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_server_error_is_retried_later_and_opens_the_circuit(
    handover, airflow, clean_db, make_order, clock, status
):
    bus, _ = handover
    envelope = routed(clean_db, make_order())
    airflow.fail_next.append(status)
    with pytest.raises(AirflowUnavailable, match=f"HTTP {status}") as raised:
        bus.deliver(NAME, envelope)
    assert isinstance(raised.value, NotYet)  # the runtime's delayed retry, never dropped
    posts = airflow.posts
    with pytest.raises(AirflowUnavailable, match="next try in"):
        bus.deliver(NAME, envelope)  # circuit open: Airflow is left alone
    assert airflow.posts == posts
    clock.now += 1.5
    bus.deliver(NAME, envelope)
    assert len(airflow.runs) == 1


def test_airflow_unreachable_is_retried_with_a_doubling_delay(clean_db, make_order, clock):
    closed = f"http://127.0.0.1:{unused_port()}"
    runs = runs_for(closed, clock)
    bus = InMemoryBus(clean_db, [airflow_handover_service(runs, max_attempts=10)])
    envelope = routed(clean_db, make_order())
    waits = []
    for _ in range(4):
        with pytest.raises(AirflowUnavailable, match="unreachable"):
            bus.deliver(NAME, envelope)
        waits.append(runs.circuit.open_until - clock.now)
        clock.now = runs.circuit.open_until
    assert waits == [1.0, 2.0, 4.0, 8.0]


def test_an_expired_token_is_renewed_once(handover, airflow, clean_db, make_order):
    bus, _ = handover
    bus.deliver(NAME, routed(clean_db, make_order()))
    airflow.tokens.clear()  # the api-server restarted with a new secret: tokens are void
    bus.deliver(NAME, routed(clean_db, make_order()))
    assert len(airflow.runs) == 2 and airflow.logins == 2


def test_a_login_refused_is_retried_not_parked(airflow, clean_db, make_order, clock):
    runs = runs_for(airflow.url, clock, password="wrong")
    bus = InMemoryBus(clean_db, [airflow_handover_service(runs, max_attempts=10)])
    with pytest.raises(AirflowUnavailable, match="SEGUE_AIRFLOW_PASSWORD"):
        bus.deliver(NAME, routed(clean_db, make_order()))
    assert airflow.runs == {}


@pytest.mark.parametrize("status", [400, 403, 422])
def test_a_refusal_is_parked_with_airflows_answer(handover, airflow, clean_db, make_order, status):
    bus, runs = handover
    airflow.fail_next.append(status)
    with pytest.raises(AirflowRefused) as raised:
        bus.deliver(NAME, routed(clean_db, make_order()))
    assert isinstance(raised.value, Unprocessable)
    assert raised.value.code == "airflow_refused" and raised.value.status == status
    assert f"HTTP {status} from POST /api/v2/dags/payment_pipeline/dagRuns" in raised.value.reason
    assert runs.circuit.open_until == 0.0  # a refusal is not an outage


def test_a_dag_not_parsed_yet_is_retried(handover, airflow, clean_db, make_order):
    bus, _ = handover
    airflow.fail_next.append(404)
    envelope = routed(clean_db, make_order())
    with pytest.raises(AirflowUnavailable, match="HTTP 404"):
        bus.deliver(NAME, envelope)
    bus.deliver(NAME, envelope)  # no circuit for a 404: the next delivery goes through
    assert len(airflow.runs) == 1


def test_the_service_waits_longer_than_the_default_for_airflow(airflow, clock):
    spec = airflow_handover_service(runs_for(airflow.url, clock), max_attempts=3600)
    assert spec.not_yet_limit == 3600
    assert spec.routing_keys == ["segue.payments.OrderRouted"]


def test_the_handover_runs_as_its_own_module_and_every_service_declares_its_queue():
    from include.services import AIRFLOW_PROCESSES, consumer_specs

    module = importlib.import_module(AIRFLOW_PROCESSES[NAME])
    assert callable(module.main) and module.NAME == NAME
    assert NAME in {spec.name for spec in consumer_specs()}  # OrderRouted is never unroutable


def test_an_outage_and_the_recovery_are_logged_once_per_attempt(
    handover, airflow, clean_db, make_order, clock, caplog
):
    bus, _ = handover
    envelope = routed(clean_db, make_order())
    airflow.fail_next.append(503)
    with caplog.at_level("INFO", logger="include.services.airflow_runs"):
        for _ in range(3):  # one real attempt, then two while the circuit is open
            with pytest.raises(AirflowUnavailable):
                bus.deliver(NAME, envelope)
        clock.now += 1.5
        bus.deliver(NAME, envelope)
    circuit = [r for r in caplog.records if r.name == "include.services.airflow_runs"]
    messages = [record.getMessage() for record in circuit]
    assert len(messages) == 2, messages
    assert "HTTP 503" in messages[0] and "waits 1s" in messages[0]
    assert messages[1].startswith("Airflow answers again")
