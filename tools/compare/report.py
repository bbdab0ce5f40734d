"""Write a ``segue compare`` report directory: results.json, report.md, report.html, plots.

``report.html`` is self-contained (plots embedded as base64 PNG); ``report.md`` links the PNG
files next to it. Every figure says how it was measured.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from tools.compare import plots
from tools.compare.figures import (
    ARTICLE_COLUMN,
    ARTICLE_TABLE,
    PATH_TITLE,
    bottleneck,
    cpu_per_order,
    fault_text,
    invariants_hold,
    latencies,
    latency_text,
    observability_text,
    outcomes,
    throughput_text,
)

HOW = {
    "Latency per order": "p50 / p95 / p99 seconds from the order's route decision "
    "(route_decisions.decided_at) to its terminal status (orders.updated_at), nominal + spike "
    "phases, terminal orders only",
    "Fault tolerance": "the fault phase: orders placed at the nominal rate, the path's fault "
    "injected mid-run, then every order must be terminal, charged at most once (store and the "
    "gateway's ledger under the order's reference), refunded iff it failed after a charge, "
    "with no stock reservation left held and a receipt and shipping notice exactly for the "
    "completed ones",
    "Observability": "for sampled orders (one failed, the rest completed) the timeline "
    "`segue orders timeline` builds (business store + Airflow REST API) must read every source "
    "and show the route decision, the outcome and the path's own steps",
    "Scalability bottleneck": "the process group with the most CPU during nominal + spike "
    "among the processes the path uses (psutil) and whether the spike was finished at >= 90% of "
    "the rate offered",
    "Throughput": "spike phase: orders terminal / seconds from its first route decision to its "
    "last terminal status",
    "CPU per order": "CPU seconds during nominal + spike, per order, of the stack's processes "
    "the path uses (sampled every 0.5 s with psutil: the front door, the event log, the "
    "gateway, plus Airflow and the hand-over on the DAG paths, the charge service and "
    "saga-replies on the hybrid one, the five services on the event path); PostgreSQL and "
    "RabbitMQ are shared with others on this machine and not counted",
}
PLOTS = {
    "latency_cdf": ("Latency CDF per path", "Latency per order"),
    "throughput": ("Throughput over time", "Throughput"),
    "outcomes": ("Outcomes per path", "Fault tolerance"),
    "cpu_per_order": ("CPU per order", "CPU per order"),
}


def table_rows(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The article's table with each cell replaced by what was measured (article in brackets).

    :param results: the run's results.
    """
    paths = results["paths"]
    tracing = results.get("tracing_module")

    def cells(row: str, measure: Any) -> tuple[str, list[str]]:
        column = ARTICLE_COLUMN
        return row, [
            f"{measure(r)} (article: {ARTICLE_TABLE[row][column[p]]})" for p, r in paths.items()
        ]

    rows = [
        cells("Latency per order", lambda r: latency_text(latencies(r))),
        cells("Fault tolerance", fault_text),
        cells("Observability", lambda r: observability_text(r, tracing)),
        cells("Scalability bottleneck", bottleneck),
        ("Throughput", [throughput_text(r) for r in paths.values()]),
        ("CPU per order", [f"{cpu_per_order(r):.2f} CPU-s" for r in paths.values()]),
    ]
    return rows


def markdown_table(results: dict[str, Any]) -> str:
    """The measured table in Markdown (also pasted into the README).

    :param results: the run's results.
    """
    names = list(results["paths"])
    lines = ["| Criterion | " + " | ".join(PATH_TITLE[n] for n in names) + " |"]
    lines.append("|---" * (len(names) + 1) + "|")
    for row, cells in table_rows(results):
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(results: dict[str, Any], out: Path) -> Path:
    """Write the directory ``out``; the path of ``report.html``.

    :param results: the run's results.
    :param out: the report directory (created).
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    paths = results["paths"]
    images = {
        "latency_cdf": plots.latency_cdf(paths),
        "throughput": plots.throughput(paths, 5.0 if results["scenario_name"] == "full" else 2.0),
        "outcomes": plots.outcome_bars(paths),
        "cpu_per_order": plots.cpu_bars(paths),
    }
    for name, png in images.items():
        (out / f"{name}.png").write_bytes(png)
    (out / "report.md").write_text(_markdown(results))
    (out / "report.html").write_text(_html(results, images))
    return out / "report.html"


def _header(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    verdict = "hold" if invariants_hold(results) else "DO NOT HOLD"
    return [
        f"Measured {results['started_at']} to {results['finished_at']} on {m['host']} "
        f"({m['cpus']} CPUs, load average {m['load_average_before']} before, "
        f"{m['load_average_after']} after).",
        f"Scenario {results['scenario']}.",
        f"Invariants on every path: **{verdict}**.",
        f"CPU measured over: {', '.join(results['cpu_measured'])}.",
    ]


def _details(results: dict[str, Any]) -> list[str]:
    lines = []
    for path, r in results["paths"].items():
        fault = r["fault"]
        lines.append(
            f"- `{path}`: outcomes {outcomes(r)}; invariant violations after nominal + spike: "
            f"{len(r['invariant_violations'])}; fault: {fault['injected']}; "
            f"violations after the fault: {len(fault['violations'])}; "
            f"CPU-s by process group: "
            + ", ".join(f"{g} {s:.1f}" for g, s in sorted(r["cpu_seconds"].items()))
        )
        lines += [
            f"  - {problem}" for problem in (r["invariant_violations"] + fault["violations"])[:5]
        ]
    return lines


def _markdown(results: dict[str, Any]) -> str:
    parts = ["# segue compare", "", *_header(results), "", markdown_table(results), ""]
    parts += ["## How each figure was measured", ""]
    parts += [f"- **{row}**: {how}." for row, how in HOW.items()]
    parts += ["", "## Per path", "", *_details(results), ""]
    for name, (title, how) in PLOTS.items():
        parts += [f"## {title}", "", f"![{title}]({name}.png)", "", f"How: {HOW[how]}.", ""]
    return "\n".join(parts)


def _html(results: dict[str, Any], images: dict[str, bytes]) -> str:
    esc = html.escape
    names = list(results["paths"])
    head = "".join(f"<th>{esc(PATH_TITLE[n])}</th>" for n in names)
    body = "".join(
        f"<tr><th>{esc(row)}</th>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"
        for row, cells in table_rows(results)
    )
    header = "".join(f"<p>{esc(line).replace('**', '')}</p>" for line in _header(results))
    hows = "".join(f"<li><b>{esc(row)}</b>: {esc(how)}.</li>" for row, how in HOW.items())
    details = "".join(f"<li>{esc(line.strip('- '))}</li>" for line in _details(results))
    figures = "".join(
        f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(images[name]).decode()}'><p>How: {esc(HOW[how])}.</p>"
        for name, (title, how) in PLOTS.items()
    )
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "table{border-collapse:collapse}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>segue compare</title>"
        f"<style>{style}</style></head><body><h1>segue compare</h1>{header}"
        f"<table><tr><th>Criterion</th>{head}</tr>{body}</table>"
        f"<h2>How each figure was measured</h2><ul>{hows}</ul><h2>Per path</h2><ul>{details}</ul>"
        f"{figures}</body></html>\n"
    )
