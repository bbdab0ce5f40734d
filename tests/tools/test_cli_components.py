"""The project's `segue` command hands the library the payment workflow's components."""

from __future__ import annotations

from include.payments.database import COMPONENTS
from include.workflow import ROLLOUT_BASELINE, ROLLOUT_PATHS
from segue.cli import build_parser, settings_context
from segue.migrations.library import library_components
from tools.cli import project_context


def test_project_context_names_every_workflow_component() -> None:
    names = [component.name for component in project_context().components()]
    assert names == [
        "segue.bus",
        "segue.dead_letters",
        "segue.statemachine",
        "segue.eventlog",
        "segue.rollout",
        "segue.shadow",
        "include.payments",
        "include.payments.followups",
        "include.payments.routing",
        "include.payments.reconciliation",
        "include.payments.shadow",
    ]
    assert tuple(project_context().components()) == COMPONENTS


def test_library_context_has_the_library_components_only() -> None:
    assert tuple(settings_context().components()) == library_components()
    assert all(c.name.startswith("segue.") for c in settings_context().components())


def test_db_commands_are_registered() -> None:
    parser, _ = build_parser()
    for command in ("upgrade", "current", "check"):
        args = parser.parse_args(["db", command, "--url", "sqlite://"])
        assert args.db_command == command and callable(args.run)


def test_project_context_names_the_routing_flag_and_its_paths() -> None:
    flag = project_context().rollout()
    assert (flag.name, flag.paths, flag.baseline) == ("route", ROLLOUT_PATHS, ROLLOUT_BASELINE)
    assert flag.paths == ("dag", "saga", "hybrid", "events") and flag.baseline == "dag"


def test_library_context_reads_the_flag_from_segue_rollout_settings() -> None:
    # tests/conftest.py sets the workflow's SEGUE_* variables, as every process gets them
    flag = settings_context().rollout()
    assert (flag.paths, flag.baseline) == (ROLLOUT_PATHS, ROLLOUT_BASELINE)
