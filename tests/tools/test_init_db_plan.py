"""`segue init-db` (what `make run` does first) installs the example rollout plan, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from include.payments.rollout_plan import PLAN_FILE, default_plan
from segue.rollout.plans import latest_plans
from tools.cli import main


def test_init_db_installs_the_example_plan_once(
    clean_db: Engine, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init-db", "--url", pg_url]) == 0
    assert main(["init-db", "--url", pg_url]) == 0
    assert capsys.readouterr().out.count("rollout plan payments-events v1 installed") == 2
    with Session(clean_db) as session:
        [stored] = latest_plans(session)
    assert (stored.name, stored.version, stored.saved_by) == ("payments-events", 1, "segue up")
    assert stored.plan == default_plan()


def test_the_example_plan_is_the_workflow_plan() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "rollout-plan.yaml"
    assert example.resolve() == PLAN_FILE.resolve()
