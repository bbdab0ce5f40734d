"""``segue rollout start | progress | abort | resume | approve`` against PostgreSQL: a plan file
starts a rollout, bad input exits 2 naming the field and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.rollout import FlagSpec, current, history
from segue.rollout.guard_model import rollouts
from tests.segue.rollout.test_cli import segue
from tests.segue.rollout.test_plan import plan


def plan_file(tmp_path: Path, flag: FlagSpec, **changes: object) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan(flag=flag.name, **changes)))
    return path


def test_start_progress_and_abort(
    engine: Engine, pg_url: str, flag: FlagSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = plan_file(tmp_path, flag)
    assert segue(flag, pg_url, "start", str(path), "--actor", "ada") == 0
    out = capsys.readouterr().out
    assert "started: 10% -> 100%" in out and "events at 10% now" in out
    with Session(engine) as session:
        [state] = rollouts(session, flag.name)
        assert current(session, flag).definition.weights == {"dag": 90, "events": 10}
    assert segue(flag, pg_url, "start", str(path)) == 2  # one rollout per flag
    assert f"rollout {state.id} (events-rollout) is running" in capsys.readouterr().err
    assert segue(flag, pg_url, "progress") == 0
    assert f"rollout {state.id}  running  plan events-rollout v1  step 1/2 (10%)" in (
        capsys.readouterr().out
    )
    assert segue(flag, pg_url, "approve", str(state.id)) == 2
    assert "waits for no approval" in capsys.readouterr().err
    assert segue(flag, pg_url, "abort", str(state.id), "--reason", "not today") == 0
    with Session(engine) as session:
        version = current(session, flag)
        assert version.definition.killed
        assert history(session, flag)[-1].reason.endswith("not today")
    assert segue(flag, pg_url, "resume", str(state.id)) == 2
    assert "is aborted, not held" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": [{"weight": 10, "bake_seconds": 60}, {"weight": 5, "bake_seconds": 60}]},
         "steps[1].weight"),
        ({"candidate": "lambda"}, "candidate"),
        ({"checks": [{"name": "x", "query": "SELECT 1, 1 WHERE :path = :nope",
                      "comparison": "absolute", "max": 1}]}, "checks[0].query"),
    ],
    ids=["steps", "candidate", "query"],
)  # fmt: skip
def test_a_bad_plan_file_exits_2_naming_the_field_and_changes_nothing(
    engine: Engine,
    pg_url: str,
    flag: FlagSpec,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, object],
    field: str,
) -> None:
    assert segue(flag, pg_url, "start", str(plan_file(tmp_path, flag, **changes))) == 2
    assert f"refused, nothing changed: {field}:" in capsys.readouterr().err
    assert segue(flag, pg_url, "start", str(tmp_path / "missing.yaml")) == 2
    assert "plan: cannot read" in capsys.readouterr().err
    with Session(engine) as session:
        assert current(session, flag).version == 0 and rollouts(session, flag.name) == []
