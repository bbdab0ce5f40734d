"""The OpenFeature provider: what a string flag resolves to, that other types are refused, and
that a failed version check keeps the version known instead of failing every evaluation."""

from __future__ import annotations

import pytest
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from sqlalchemy import Engine, delete
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from segue.rollout import FlagSpec, SegueProvider, kill, rollout_client, set_split
from segue.rollout.tables import FlagVersionRow
from segue.store.engine import build_engine

DOWN = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1"


def test_the_client_resolves_the_path_with_version_reason_and_bucket(
    engine: Engine, flag: FlagSpec
) -> None:
    client = rollout_client(engine)
    context = EvaluationContext(targeting_key="o-1", attributes={"order_id": "o-1"})
    before = client.get_string_details(flag.name, flag.baseline, context)
    assert (before.value, before.reason, before.flag_metadata["version"]) == (
        "dag",
        Reason.DEFAULT,
        0,
    )
    with Session(engine) as session:
        set_split(session, flag, {"weights": {"saga": 100}, "baseline": "dag"}, "ada", "saga")
        session.commit()
    provider = SegueProvider(engine)  # a fresh process's view
    details = provider.resolve_string_details(flag.name, flag.baseline, context)
    assert (details.value, details.variant, details.reason) == ("saga", "saga", Reason.SPLIT)
    assert (
        details.flag_metadata["version"] == 1 and 0 <= int(details.flag_metadata["bucket"]) < 10_000
    )
    with Session(engine) as session:
        kill(session, flag, "ada", "stop")
        session.commit()
    killed = SegueProvider(engine).resolve_string_details(flag.name, flag.baseline, context)
    assert (killed.value, killed.reason, killed.flag_metadata["segue_reason"]) == (
        "dag",
        Reason.DISABLED,
        "killed",
    )


def test_other_flag_types_are_a_type_mismatch(engine: Engine, flag: FlagSpec) -> None:
    details = rollout_client(engine).get_boolean_details(flag.name, False)
    assert details.error_code == ErrorCode.TYPE_MISMATCH and details.value is False


def test_a_failed_version_check_keeps_the_known_version(engine: Engine, flag: FlagSpec) -> None:
    with Session(engine) as session:
        set_split(session, flag, {"weights": {"events": 100}, "baseline": "dag"}, "ada", "events")
        session.commit()
    provider = SegueProvider(engine, refresh_seconds=0)
    assert provider.evaluate(flag.name, flag.baseline, {"order_id": "o"}).path == "events"
    provider.engine = build_engine(DOWN)  # the store becomes unreachable
    assert provider.evaluate(flag.name, flag.baseline, {"order_id": "o"}).path == "events"
    cold = SegueProvider(build_engine(DOWN))
    with pytest.raises(OperationalError):  # nothing known yet: no guess
        cold.evaluate(flag.name, flag.baseline, {"order_id": "o"})


def test_versions_started_again_are_seen_as_new(engine: Engine, flag: FlagSpec) -> None:
    """An emptied (or restored) table numbers versions from 1 again: a provider that cached the
    old version 1 must not keep serving it."""
    provider = SegueProvider(engine, refresh_seconds=0)
    with Session(engine) as session:
        set_split(session, flag, {"weights": {"saga": 100}, "baseline": "dag"}, "ada", "saga")
        session.commit()
    assert provider.evaluate(flag.name, flag.baseline, {"order_id": "o-1"}).path == "saga"
    with Session(engine) as session:
        session.execute(delete(FlagVersionRow).where(FlagVersionRow.flag_name == flag.name))
        version = set_split(
            session, flag, {"weights": {"events": 100}, "baseline": "dag"}, "ada", "events"
        )
        session.commit()
        assert version.version == 1
    assert provider.evaluate(flag.name, flag.baseline, {"order_id": "o-1"}).path == "events"
