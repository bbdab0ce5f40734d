"""The shadow switch: audited versions, bad input refused naming the field, sticky buckets, and
``segue rollout shadow`` from the command line."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.cli import CliContext, main
from segue.rollout import ConcurrentChange, FlagSpec, RolloutError
from segue.rollout.shadow import (
    ShadowSetting,
    ShadowSwitch,
    set_shadow,
    shadow_history,
    shadow_in_force,
)


def segue(flag: FlagSpec, url: str, *argv: str) -> int:
    context = CliContext(
        database_url=lambda: url,
        registry=lambda: pytest.fail("no registry needed"),
        schemas_root=lambda: pytest.fail("no schemas needed"),
        rollout=lambda: flag,
    )
    return main(["rollout", *argv], context=context)


def test_versions_are_kept_with_who_and_why(engine: Engine, flag: FlagSpec) -> None:
    with Session(engine) as session:
        assert shadow_in_force(session, flag.name) == ShadowSetting(flag_name=flag.name)
        set_shadow(session, flag, path="events", percent=10, actor="ada", reason="try it")
        set_shadow(session, flag, path=None, percent=0, actor="bob", reason="enough")
        session.commit()
    with Session(engine) as session:
        newest, first = shadow_history(session, flag.name)
        in_force = shadow_in_force(session, flag.name)
    assert (first.version, first.path, first.percent, first.changed_by) == (1, "events", 10, "ada")
    assert (newest.version, newest.on, newest.reason) == (2, False, "enough")
    assert in_force == newest and in_force.describe() == "off"


@pytest.mark.parametrize(
    ("path", "percent", "reason", "field"),
    [
        ("events", 101, "r", "percent"),
        ("events", -1, "r", "percent"),
        ("nowhere", 10, "r", "path"),
        ("dag", 10, "r", "path"),  # the baseline is what is shadowed, not a candidate
        ("events", 10, " ", "reason"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    engine: Engine, flag: FlagSpec, path: str, percent: int, reason: str, field: str
) -> None:
    with Session(engine) as session:
        with pytest.raises(RolloutError) as refused:
            set_shadow(session, flag, path=path, percent=percent, actor="a", reason=reason)
        assert refused.value.field == field
        assert shadow_in_force(session, flag.name).version == 0


def test_a_stale_expected_version_is_refused(engine: Engine, flag: FlagSpec) -> None:
    with Session(engine) as session:
        set_shadow(session, flag, path="events", percent=5, actor="a", reason="r")
        with pytest.raises(ConcurrentChange):
            set_shadow(
                session, flag, path="events", percent=9, actor="a", reason="r", expected_version=0
            )


def test_mirroring_is_by_bucket_and_grows_with_the_percent(flag: FlagSpec) -> None:
    ten = ShadowSetting(flag_name=flag.name, version=1, path="events", percent=10)
    twenty = ten.model_copy(update={"percent": 20})
    assert [ten.mirrors(b) for b in (0, 999, 1000, None)] == [True, True, False, False]
    assert all(twenty.mirrors(b) for b in range(10_000) if ten.mirrors(b))
    assert sum(twenty.mirrors(b) for b in range(10_000)) == 2000
    assert not ShadowSetting(flag_name=flag.name).mirrors(0)


def test_the_switch_sees_a_change_after_its_ttl(engine: Engine, flag: FlagSpec) -> None:
    switch = ShadowSwitch(engine, flag.name, ttl_seconds=0)
    assert not switch.current().on
    with Session(engine) as session:
        set_shadow(session, flag, path="events", percent=30, actor="a", reason="r")
        session.commit()
    assert switch.current().describe() == "events at 30%"


def test_the_command_line(
    engine: Engine, pg_url: str, flag: FlagSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    assert segue(flag, pg_url, "shadow", "--percent", "10", "--reason", "first look") == 0
    assert "shadow mode: events at 10%  (version 1)" in capsys.readouterr().out
    assert segue(flag, pg_url, "shadow", "--percent", "150", "--reason", "x") == 2
    assert "percent" in capsys.readouterr().err
    assert segue(flag, pg_url, "shadow", "--percent", "10") == 2
    assert "reason" in capsys.readouterr().err
    assert segue(flag, pg_url, "shadow", "--off", "--reason", "seen enough", "--actor", "eve") == 0
    out = capsys.readouterr().out
    assert "shadow mode: off  (version 2)" in out and "eve: off: seen enough" in out
    assert segue(flag, pg_url, "shadow") == 0
    assert "v1" in capsys.readouterr().out


def test_adding_shadow_leaves_the_other_commands_options_alone() -> None:
    from segue.cli import build_parser

    parser, _ = build_parser()
    with pytest.raises(SystemExit):  # --reason is still required by set and kill
        parser.parse_args(["rollout", "kill"])
    rollout = parser._subparsers._group_actions[0].choices["rollout"]
    kill = rollout._subparsers._group_actions[0].choices["kill"]
    assert "--reason REASON" in kill.format_help()
