"""One check's measurements over a rollout as an inline SVG chart, drawn on the server.

The candidate's value per evaluation (a line, each point coloured by its outcome: pass, fail,
inconclusive), the baseline's value for ``vs_baseline`` checks, the limit as a dashed red line,
and a dotted line where a step began, labelled with the candidate's percent. No JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from segue.rollout.guard_model import Evaluation
from segue.rollout.plan import Check, Comparison

WIDTH, HEIGHT = 560, 170
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 26
COLOURS = {"pass": "#15803d", "fail": "#b91c1c", "inconclusive": "#d97706"}


def limit_of(check: Check, baseline: float | None) -> float | None:
    """The highest acceptable candidate value given the baseline's (None: no limit known).

    :param check: the check.
    :param baseline: the baseline's value in the same window (``vs_baseline``).
    """
    if check.comparison is Comparison.ABSOLUTE:
        return check.max
    if baseline is None:
        return None
    limits = []
    if check.max_increase is not None:
        limits.append(baseline + check.max_increase)
    if check.max_ratio is not None:
        limits.append(baseline * check.max_ratio)
    return min(limits)


def chart_svg(check: Check, points: Sequence[Evaluation]) -> str:
    """The chart of ``check`` over ``points`` (one per evaluation, oldest first).

    :param check: the check (its limits and unit).
    :param points: its stored measurements.
    """
    label = f"{escape(check.name)}: candidate vs limit"
    if not points:
        return (
            f'<svg class="check-chart" role="img" aria-label="{label}" width="{WIDTH}" '
            f'height="40"><text x="8" y="24" font-size="12" fill="#64748b">no evaluation '
            "yet</text></svg>"
        )
    limits = [limit_of(check, p.baseline_value) for p in points]
    values = [v for p in points for v in (p.candidate_value, p.baseline_value) if v is not None]
    values += [v for v in limits if v is not None]
    peak = max(values, default=0.0) or 1.0  # all zero: a scale of 0 to 1
    top = peak * 1.1
    span_x = max(len(points) - 1, 1)

    def x(index: int) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * index / span_x

    def y(value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)

    parts = [
        f'<svg class="check-chart" data-check="{escape(check.name)}" role="img" '
        f'aria-label="{label}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg" font-size="11">',
        f'<line x1="{LEFT}" y1="{y(0)}" x2="{WIDTH - RIGHT}" y2="{y(0)}" stroke="#94a3b8"/>',
        f'<text x="{LEFT - 4}" y="{y(0) + 4}" text-anchor="end">0</text>',
        f'<text x="{LEFT - 4}" y="{y(peak) + 4}" text-anchor="end">{peak:.3g}</text>',
    ]
    step = None
    for index, point in enumerate(points):
        if point.step_index != step:
            step = point.step_index
            parts.append(
                f'<line x1="{x(index):.1f}" y1="{TOP}" x2="{x(index):.1f}" y2="{y(0)}" '
                f'stroke="#cbd5e1" stroke-dasharray="2 3"/><text x="{x(index) + 3:.1f}" '
                f'y="{HEIGHT - 8}" fill="#475569">{point.weight}%</text>'
            )
    parts.append(_line([(x(i), y(v)) for i, v in enumerate(limits) if v is not None],
                       "#b91c1c", 'stroke-dasharray="6 4" class="limit"'))  # fmt: skip
    if check.comparison is Comparison.VS_BASELINE:
        baseline = [(x(i), y(p.baseline_value)) for i, p in enumerate(points)
                    if p.baseline_value is not None]  # fmt: skip
        parts.append(_line(baseline, "#64748b", 'class="baseline"'))
    candidate = [(x(i), y(p.candidate_value)) for i, p in enumerate(points)
                 if p.candidate_value is not None]  # fmt: skip
    parts.append(_line(candidate, "#1d4ed8", 'class="candidate" stroke-width="2"'))
    for index, point in enumerate(points):
        value = point.candidate_value if point.candidate_value is not None else 0.0
        parts.append(
            f'<circle cx="{x(index):.1f}" cy="{y(value):.1f}" r="3.5" '
            f'fill="{COLOURS.get(point.outcome, "#64748b")}" data-outcome="{point.outcome}">'
            f"<title>#{point.evaluation} {escape(point.detail)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _line(points: list[tuple[float, float]], colour: str, extra: str) -> str:
    if not points:
        return ""
    if len(points) == 1:
        points = [points[0], (points[0][0] + 4, points[0][1])]
    joined = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return f'<polyline points="{joined}" fill="none" stroke="{colour}" {extra}/>'
