"""``segue rollout status | set | kill | history`` against PostgreSQL: changes are recorded with
the actor and reason, bad input exits 2 naming the field and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.cli import CliContext, main
from segue.rollout import FlagSpec, current, history, latest_version
from segue.rollout.cli import parse_rule, parse_weights
from segue.rollout.definition import RolloutError, flag_from_settings
from segue.settings import get_settings


def segue(flag: FlagSpec, url: str, *argv: str) -> int:
    context = CliContext(
        database_url=lambda: url,
        registry=lambda: pytest.fail("the rollout commands need no registry"),
        schemas_root=lambda: pytest.fail("the rollout commands need no schemas"),
        rollout=lambda: flag,
    )
    return main(["rollout", *argv], context=context)


def test_set_kill_status_and_history(
    engine: Engine, pg_url: str, flag: FlagSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    assert segue(flag, pg_url, "status") == 0
    assert "version 0" in capsys.readouterr().out
    assert (
        segue(
            flag,
            pg_url,
            "set",
            "--weights",
            "dag=90,events=10",
            "--sticky-by",
            "customer_email",
            "--rule",
            "amount>500=dag",
            "--rule",
            "currency in [JPY, KRW]=saga",
            "--reason",
            "start events",
            "--actor",
            "ada",
        )
        == 0
    )
    assert segue(flag, pg_url, "set", "--weights", "dag=75,events=25", "--reason", "more") == 0
    assert segue(flag, pg_url, "kill", "--reason", "incident 7", "--actor", "grace") == 0
    capsys.readouterr()
    with Session(engine) as session:
        in_force = current(session, flag)
        changes = history(session, flag)
    assert in_force.version == 3 and in_force.definition.killed
    assert in_force.definition.sticky_key == "customer_email"  # kept when not given again
    assert [rule.describe() for rule in in_force.definition.rules] == [
        "amount>500=dag",
        "currency in [JPY,KRW]=saga",
    ]
    assert [(c.changed_by, c.reason) for c in changes][::2] == [
        ("ada", "start events"),
        ("grace", "incident 7"),
    ]
    assert changes[1].changed_by  # the OS user by default
    assert segue(flag, pg_url, "history") == 0
    out = capsys.readouterr().out
    assert "weights.events: 10 -> 25" in out and "killed: False -> True" in out
    assert "grace: incident 7" in out
    assert segue(flag, pg_url, "status") == 0
    assert "YES, everything to dag" in capsys.readouterr().out
    assert segue(flag, pg_url, "set", "--weights", "dag=75,events=25", "--reason", "over") == 0
    with Session(engine) as session:
        assert not current(session, flag).definition.killed


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["set", "--weights", "dag=90,events=5", "--reason", "r"], "weights"),
        (["set", "--weights", "dag=90,lambda=10", "--reason", "r"], "weights.lambda"),
        (["set", "--weights", "dag=ninety", "--reason", "r"], "weights"),
        (["set", "--weights", "dag=50,dag=50", "--reason", "r"], "weights.dag"),
        (["set", "--weights", "dag=100", "--baseline", "cron", "--reason", "r"], "baseline"),
        (["set", "--weights", "dag=100", "--rule", "amount>>5=dag", "--reason", "r"], "rules[0]"),
        (["set", "--weights", "dag=100", "--rule", "amount~5=dag", "--reason", "r"], "rules[0]"),
        (["set", "--weights", "dag=100", "--rule", "amount>5=cron", "--reason", "r"], "rules[0]"),
        (["set", "--weights", "dag=100", "--sticky-by", "a b", "--reason", "r"], "sticky_key"),
        (["set", "--weights", "dag=100", "--reason", " "], "reason"),
        (["kill", "--reason", "r", "--expected-version", "7"], "version"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_changes_nothing(
    engine: Engine,
    pg_url: str,
    flag: FlagSpec,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    field: str,
) -> None:
    assert segue(flag, pg_url, "set", "--weights", "dag=90,events=10", "--reason", "first") == 0
    capsys.readouterr()
    assert segue(flag, pg_url, *argv) == 2
    err = capsys.readouterr().err
    assert f"refused, nothing changed: {field}" in err, err
    with Session(engine) as session:
        assert latest_version(session, flag.name) == 1


def test_a_missing_reason_is_a_usage_error(pg_url: str, flag: FlagSpec) -> None:
    with pytest.raises(SystemExit) as exited:
        segue(flag, pg_url, "set", "--weights", "dag=100")
    assert exited.value.code == 2


def test_parsers() -> None:
    assert parse_weights("dag=90, events=10") == {"dag": 90, "events": 10}
    assert parse_rule("amount >= 500.5=dag") == {
        "attribute": "amount",
        "operator": ">=",
        "value": "500.5",
        "path": "dag",
    }
    assert parse_rule("customer_email in [a@x.com,b@x.com]=hybrid")["value"] == [
        "a@x.com",
        "b@x.com",
    ]


def test_settings_without_paths_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGUE_ROLLOUT_PATHS", "[]")
    get_settings.cache_clear()
    try:
        with pytest.raises(RolloutError) as caught:
            flag_from_settings()
        assert caught.value.field == "SEGUE_ROLLOUT_PATHS"
        monkeypatch.setenv("SEGUE_ROLLOUT_PATHS", '["dag", "events"]')
        monkeypatch.setenv("SEGUE_ROLLOUT_BASELINE", "saga")
        get_settings.cache_clear()
        with pytest.raises(RolloutError) as caught:
            flag_from_settings()
        assert caught.value.field == "SEGUE_ROLLOUT_BASELINE"
    finally:
        get_settings.cache_clear()
