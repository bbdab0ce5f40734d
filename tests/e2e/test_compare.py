"""``segue compare --quick`` on all four paths against real processes: the e2e Airflow, the
session's gateway and business store, and every service on the Airflow's own vhost (so
``payment_hybrid``'s charge requests reach the charge service).

The run must end with a complete report (the measured table with every path and criterion,
four plots embedded in the HTML, the figures' methods) and every invariant holding after the
nominal, spike and fault phases; each path's fault must actually have been injected and each
sampled order must have one complete timeline.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from include.services import AIRFLOW_PROCESSES, EVENT_PATH_PROCESSES
from include.services.api_clients import create_client
from segue.store.engine import session_scope
from tools.airflow_stack import AirflowStack
from tools.chaos.cli import PATHS
from tools.chaos.stack import Stack
from tools.compare.figures import PATH_TITLE, invariants_hold
from tools.compare.report import HOW, write_report
from tools.compare.run import run_compare
from tools.compare.scenario import QUICK
from tools.gateway import GatewayProcess
from tools.ports import unused_port
from tools.processes import read_pid
from tools.services import start_services

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(
    airflow_stack: AirflowStack,
    pg_url: str,
    amqp_url: str,
    gateway_process: GatewayProcess,
    engine: Engine,
    tmp_path: Path,
) -> Iterator[Stack]:
    """The whole stack as ``segue up`` runs it, on the session's Airflow."""
    vhost_url = airflow_stack.extra_env.get("SEGUE_AMQP_URL", amqp_url)
    with session_scope(engine) as session:
        api_key = create_client(session, f"compare-{uuid.uuid4().hex[:8]}")
    port = unused_port()
    with start_services(
        {**EVENT_PATH_PROCESSES, **AIRFLOW_PROCESSES},
        database_url=pg_url,
        amqp_url=vhost_url,
        gateway_url=gateway_process.url,
        log_dir=tmp_path / "services",
        extra_env={
            "SEGUE_INTAKE_PORT": str(port),
            "SEGUE_AIRFLOW_API_URL": airflow_stack.url,
            "SEGUE_AIRFLOW_USERNAME": "admin",
            "SEGUE_AIRFLOW_PASSWORD": airflow_stack.admin_password(),
        },
    ) as services:
        yield Stack(
            database_url=pg_url,
            intake_url=f"http://127.0.0.1:{port}",
            api_key=api_key,
            gateway_url=gateway_process.url,
            gateway_token=gateway_process.admin_token,
            amqp_url=vhost_url,
            airflow_url=airflow_stack.url,
            airflow_password=airflow_stack.admin_password(),
            services=services,
            airflow_pid=read_pid(airflow_stack.pid_path),
            gateway_pid=gateway_process.pid,
        )


# On a quiet machine the run takes a few minutes; the suite's 600 s cap is too tight for a
# shared one (measured: the e2e Airflow queued task tries for minutes at load average 30-45).
@pytest.mark.timeout(1500)
def test_quick_compare_writes_a_complete_report_and_the_invariants_hold(stack, tmp_path):
    stack.check()
    results = run_compare(stack, QUICK, PATHS, stack.processes())
    out = write_report(results, tmp_path / "report").parent

    problems = {
        path: (r["invariant_violations"], r["fault"], [p["not_terminal"] for p in r["phases"]])
        for path, r in results["paths"].items()
    }
    assert invariants_hold(results), problems
    for path, result in results["paths"].items():
        assert result["fault"]["applied"], (path, result["fault"]["injected"])
        assert all(t["complete"] for t in result["timelines"].values()), (path, result["timelines"])
        assert sum(result["cpu_seconds"].values()) > 0, path
    markdown = (out / "report.md").read_text()
    for path in PATHS:
        assert PATH_TITLE[path] in markdown
    for row in HOW:
        assert re.search(rf"^\| {row} \|", markdown, re.MULTILINE) or f"**{row}**" in markdown, row
    assert "none terminal" not in markdown
    page = (out / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 4
    assert "src='http" not in page
    assert json.loads((out / "results.json").read_text())["scenario_name"] == "quick"
