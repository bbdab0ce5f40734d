"""The project's ``segue`` command is a process of the payment workflow: run as a user runs it,
with no ``SEGUE_*`` variable naming the workflow in the environment, the commands that need the
workflow's providers find them (``segue rollout shadow-report`` answered "No shadow observations
configured" before, while the tests' own environment hid it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import Engine

from include.workflow import workflow_env
from tools.airflow_stack import PROJECT_ROOT


def test_shadow_report_finds_the_workflows_observations_without_any_segue_variable(
    clean_db: Engine, pg_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in workflow_env()}
    result = subprocess.run(
        [sys.executable, "-m", "tools.cli", "rollout", "shadow-report", "--json", "--url", pg_url],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "No shadow observations configured" not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["mirrored"] == 0, report
