"""``segue rollout start | progress | abort | resume | approve``: the guarded rollout from the
command line.

``start PLAN`` reads a plan (YAML or JSON), checks it against the workflow's flag, stores it and
starts the rollout: the candidate gets the first step's weight and the controller DAG takes it
from there. Bad input exits 2 naming the field and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segue.rollout.definition import RolloutError

if TYPE_CHECKING:
    from segue.cli import CliContext


def add_guard_commands(commands: Any, change: argparse.ArgumentParser) -> None:
    """Add the guarded rollout's commands to ``segue rollout``'s subparsers.

    :param commands: the ``rollout`` command's subparsers.
    :param change: the parent parser of changes (``--actor``; its ``--reason`` is required).
    """
    actor = argparse.ArgumentParser(add_help=False)
    actor.add_argument("--actor", default=change.get_default("actor"), help="who (recorded)")
    actor.add_argument("--url", help="database URL (default: the workflow's)")
    start = commands.add_parser(
        "start", parents=[actor], help="start a guarded rollout from a plan file (YAML or JSON)"
    )
    start.add_argument("plan", type=Path, help="the plan file (examples/rollout-plan.yaml)")
    start.set_defaults(run=_start)
    progress = commands.add_parser(
        "progress", parents=[actor], help="the guarded rollouts and their latest measurements"
    )
    progress.set_defaults(run=_progress)
    abort = commands.add_parser("abort", parents=[actor], help="abort a rollout (kill switch)")
    abort.add_argument("rollout", type=int, help="the rollout's number")
    abort.add_argument("--reason", required=True, help="why (recorded in the history)")
    abort.set_defaults(run=_abort)
    resume = commands.add_parser("resume", parents=[actor], help="resume a held rollout")
    resume.add_argument("rollout", type=int, help="the rollout's number")
    resume.set_defaults(run=_resume)
    approve = commands.add_parser(
        "approve", parents=[actor], help="approve the step a rollout waits for (as in Airflow)"
    )
    approve.add_argument("rollout", type=int, help="the rollout's number")
    approve.set_defaults(run=_approve)


def _refused(error: RolloutError) -> int:
    print(f"refused, nothing changed: {error}", file=sys.stderr)
    return 2


def _start(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.cli import _session
    from segue.rollout.guard import start
    from segue.rollout.plan import parse_plan

    try:
        flag = context.rollout()
        text = args.plan.read_text()
    except RolloutError as error:
        return _refused(error)
    except OSError as error:
        return _refused(RolloutError("plan", f"cannot read {args.plan}: {error.strerror}"))
    with _session(args, context) as session:
        try:
            state = start(session, flag, parse_plan(text, flag), args.actor)
        except RolloutError as error:
            return _refused(error)
        session.commit()
    steps = " -> ".join(f"{step.weight}%" for step in state.plan.steps)
    print(f"rollout {state.id} of plan {state.plan_name} v{state.plan_version} started: {steps}")
    print(f"  {state.plan.candidate} at {state.weight}% now; {state.reason}")
    print(f"  rollback within {state.plan.rollback_seconds()} s of a failing candidate")
    return 0


def _progress(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.cli import _session
    from segue.rollout.guard_model import evaluations, rollouts

    try:
        flag = context.rollout()
    except RolloutError as error:
        return _refused(error)
    with _session(args, context) as session:
        found = rollouts(session, flag.name, limit=5)
        latest = evaluations(session, found[0].id) if found else []
    if not found:
        print(f"{flag.name}: no guarded rollout yet")
    for state in found:
        print(
            f"rollout {state.id}  {state.state.value}  plan {state.plan_name} v{state.plan_version}"
            f"  step {state.step_index + 1}/{len(state.plan.steps)} ({state.weight}%)"
            f"  by {state.started_by}  evaluations {state.evaluations}"
        )
        print(f"    {state.reason}")
    last = max((e.evaluation for e in latest), default=None)
    for measurement in (e for e in latest if e.evaluation == last):
        print(f"    [{measurement.outcome}] {measurement.detail}")
    return 0


def _abort(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.guard import abort

    return _act(args, context, lambda s: abort(s, args.rollout, args.actor, args.reason).reason)


def _resume(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.guard import resume

    return _act(args, context, lambda s: resume(s, args.rollout, args.actor).reason)


def _approve(args: argparse.Namespace, context: CliContext) -> int:
    from segue.rollout.guard import active_by_id, approve

    def run(session: Any) -> str:
        state = active_by_id(session, args.rollout)
        if state is None or state.awaiting_step is None:
            raise RolloutError("rollout", f"rollout {args.rollout} waits for no approval")
        return approve(session, args.rollout, state.awaiting_step, args.actor).reason

    return _act(args, context, run)


def _act(args: argparse.Namespace, context: CliContext, action: Any) -> int:
    from segue.rollout.cli import _session

    with _session(args, context) as session:
        try:
            said = action(session)
        except RolloutError as error:
            return _refused(error)
        session.commit()
    print(f"rollout {args.rollout}: {said}")
    return 0
