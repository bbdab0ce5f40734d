"""A state machine drawn as inline SVG on the server, current and visited states highlighted.

No JavaScript and no CDN (the api-server may have no network). Columns follow the transitions
from the initial state; a parallel state is a box around its branches; edges into a fail state
share one "failure bus" under the main row; compensations (UNDO_*) sit in a lane underneath.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

from segue.statemachine.definition import State, StateMachineDefinition
from segue.statemachine.machine import COMPENSATED, COMPENSATION_FAILED, undo_state

NODE_W, NODE_H = 170, 42
COL_GAP, ROW_GAP, MARGIN = 80, 26, 20
ARC_SPACE = 46  # room above the main row for edges that go back
BRANCH_PAD, HEADER_H = 10, 28
MAX_LABEL = 26
LONG_LABEL = 18  # longer names get a smaller font to stay inside their box


@dataclass(frozen=True)
class Box:
    """A laid-out node of the diagram: its state, kind, position and size in SVG units."""

    name: str
    kind: str
    x: float
    y: float
    w: float = NODE_W
    h: float = NODE_H
    caption: str = ""

    @property
    def cx(self) -> float:
        """The horizontal centre."""
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        """The vertical centre."""
        return self.y + self.h / 2

    @property
    def right(self) -> float:
        """The right edge."""
        return self.x + self.w

    @property
    def bottom(self) -> float:
        """The bottom edge."""
        return self.y + self.h


def render_svg(
    definition: StateMachineDefinition,
    *,
    current: str | None = None,
    visited: Iterable[str] = (),
    taken: Iterable[tuple[str | None, str]] = (),
) -> str:
    """The SVG markup of ``definition``; ``taken`` are (from, to) pairs from the audit trail."""
    layout = _Layout(definition)
    visited_set, taken_set = set(visited), {pair for pair in taken if pair[0]}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="saga-diagram" role="img" '
        f'width="{layout.width:.0f}" height="{layout.height:.0f}" '
        f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" '
        f'aria-label="State diagram of {escape(definition.name)}">',
        "<defs>",
        _marker("arrow", "#64748b"),
        _marker("arrow-taken", "#1d4ed8"),
        "</defs>",
    ]
    parts += [_edge(layout, *edge, taken_set) for edge in layout.edges()]
    if layout.lane_top is not None:
        parts.append(
            f'<text class="lane" x="{MARGIN}" y="{layout.lane_top - 10:.0f}">'
            "compensations (run in reverse order of completion)</text>"
        )
    for box in layout.boxes.values():
        parts.append(_node(box, current, visited_set))
    parts.append("</svg>")
    return "\n".join(parts)


class _Layout:
    """Positions of every state (and compensation pseudo-state) of one definition."""

    def __init__(self, definition: StateMachineDefinition) -> None:
        self.definition = definition
        self.branch_of = {b: s.name for s in definition.states for b in s.branches}
        self.boxes: dict[str, Box] = {}
        self.column: dict[str, int] = {}
        columns = self._columns()
        main_bottom = self._place_main(columns)
        terminal_x = self._x(len(columns))
        fails = [s for s in definition.states if s.kind == "fail"]
        self.bus_y = main_bottom + ROW_GAP + NODE_H / 2 + 10
        for i, state in enumerate(fails):
            y = self.bus_y - NODE_H / 2 + i * (NODE_H + ROW_GAP)
            self._add(Box(state.name, "fail", terminal_x, y, caption="fail"), len(columns))
        bottom = max([main_bottom, *(self.boxes[s.name].bottom for s in fails)])
        self.lane_top = self._place_compensations(bottom + 2 * ROW_GAP + 10, len(columns))
        self.width = self._x(len(columns)) + NODE_W + MARGIN
        self.height = max(box.bottom for box in self.boxes.values()) + MARGIN

    def _x(self, column: int) -> float:
        return MARGIN + column * (NODE_W + COL_GAP)

    def _add(self, box: Box, column: int) -> None:
        self.boxes[box.name] = box
        self.column[box.name] = column

    def _columns(self) -> list[list[State]]:
        """Non-terminal states by distance from the initial state, then the succeed states."""
        definition = self.definition
        main = [s for s in definition.states if not s.terminal and s.name not in self.branch_of]
        names = {s.name for s in main}
        layer: dict[str, int] = {}
        if definition.initial in names:
            layer[definition.initial] = 0
            queue = deque([definition.initial])
            while queue:
                state = definition.state(queue.popleft())
                for transition in state.transitions:
                    if transition.target in names and transition.target not in layer:
                        layer[transition.target] = layer[state.name] + 1
                        queue.append(transition.target)
        unreached = max(layer.values(), default=-1) + 1
        columns: list[list[State]] = [[] for _ in range(unreached + 1)]
        for state in main:
            columns[layer.get(state.name, unreached)].append(state)
        columns = [column for column in columns if column]
        columns.append([s for s in definition.states if s.kind == "succeed"])
        return columns

    def _place_main(self, columns: list[list[State]]) -> float:
        bottom = ARC_SPACE + MARGIN
        for index, states in enumerate(columns):
            y = ARC_SPACE + MARGIN
            for state in states:
                box = self._box(state, self._x(index), y)
                self._add(box, index)
                for offset, branch in enumerate(state.branches):
                    by = y + HEADER_H + offset * (NODE_H + BRANCH_PAD)
                    inner = Box(branch, "task", box.x + BRANCH_PAD, by, NODE_W - 2 * BRANCH_PAD)
                    self._add(inner, index)
                y = box.bottom + ROW_GAP
                bottom = max(bottom, box.bottom)
        return bottom

    def _box(self, state: State, x: float, y: float) -> Box:
        if state.kind == "parallel":
            height = HEADER_H + len(state.branches) * (NODE_H + BRANCH_PAD)
            return Box(state.name, "parallel", x, y, NODE_W, height, "parallel")
        caption = state.kind
        if state.retry and state.retry.max_attempts > 1:
            caption += f" · up to {state.retry.max_attempts} tries"
        if state.pivot:
            caption += " · pivot"
        return Box(state.name, state.kind, x, y, caption=caption)

    def _place_compensations(self, top: float, terminal_column: int) -> float | None:
        steps = [s for s in self.definition.states if s.compensation]
        if not steps:
            return None
        stacked: dict[int, int] = {}
        for step in steps:
            column = self.column.get(self.branch_of.get(step.name, step.name), 0)
            row = stacked.get(column, 0)
            stacked[column] = row + 1
            y = top + row * (NODE_H + ROW_GAP)
            box = Box(undo_state(step.name), "undo", self._x(column), y, caption="compensation")
            self._add(box, column)
        for row, (name, kind) in enumerate(
            ((COMPENSATED, "compensated"), (COMPENSATION_FAILED, "compensation_failed"))
        ):
            y = top + row * (NODE_H + ROW_GAP)
            self._add(Box(name, kind, self._x(terminal_column), y, caption=kind), terminal_column)
        return top

    def edges(self) -> list[tuple[str, str, str]]:
        """(source, target, label) for every drawn transition; branch-internal ones are left
        out (the parallel box shows them)."""
        result: dict[tuple[str, str], list[str]] = {}
        for state in self.definition.states:
            if state.name in self.branch_of or state.terminal:
                continue
            for transition in state.transitions:
                if transition.target not in self.boxes:
                    continue
                label = transition.event + (f" [{transition.guard}]" if transition.guard else "")
                result.setdefault((state.name, transition.target), []).append(label)
        return [(source, target, ", ".join(labels)) for (source, target), labels in result.items()]


def _edge(layout: _Layout, source: str, target: str, label: str, taken: set) -> str:
    src, dst = layout.boxes[source], layout.boxes[target]
    classes = "edge taken" if (source, target) in taken else "edge"
    marker = "arrow-taken" if (source, target) in taken else "arrow"
    if dst.kind == "fail" and layout.column[target] > layout.column[source]:
        path = f"M{src.cx - 30:.0f},{src.bottom:.0f} V{dst.cy:.0f} H{dst.x:.0f}"
        lx, ly, anchor = src.cx - 26, src.bottom + 14, "start"
    elif source == target:
        path = (
            f"M{src.right - 30:.0f},{src.y:.0f} C{src.right - 30:.0f},{src.y - 30:.0f} "
            f"{src.right + 20:.0f},{src.y - 10:.0f} {src.right:.0f},{src.y + 12:.0f}"
        )
        lx, ly, anchor = src.right - 20, src.y - 22, "start"
    elif layout.column[target] > layout.column[source]:
        x0, y0, x1, y1 = src.right, src.cy, dst.x, dst.cy
        dx = (x1 - x0) / 2
        path = (
            f"M{x0:.0f},{y0:.0f} C{x0 + dx:.0f},{y0:.0f} {x1 - dx:.0f},{y1:.0f} {x1:.0f},{y1:.0f}"
        )
        lx, ly, anchor = (x0 + x1) / 2, (y0 + y1) / 2 - 6, "middle"
    else:
        top = min(src.y, dst.y) - ARC_SPACE + 8
        path = (
            f"M{src.cx:.0f},{src.y:.0f} C{src.cx:.0f},{top:.0f} {dst.cx:.0f},{top:.0f} "
            f"{dst.cx:.0f},{dst.y:.0f}"
        )
        lx, ly, anchor = (src.cx + dst.cx) / 2, top + 14, "middle"
    return (
        f'<g class="{classes}" data-from="{escape(source)}" data-to="{escape(target)}">'
        f'<path d="{path}" marker-end="url(#{marker})"/>'
        f'<text x="{lx:.0f}" y="{ly:.0f}" text-anchor="{anchor}">{escape(label)}</text></g>'
    )


def _node(box: Box, current: str | None, visited: set[str]) -> str:
    classes = ["state", f"kind-{box.kind}"]
    if box.name in visited:
        classes.append("visited")
    if box.name == current:
        classes.append("current")
    label = box.name if len(box.name) <= MAX_LABEL else box.name[: MAX_LABEL - 1] + "…"
    title = f"{box.name} ({box.caption})" + (" — current state" if box.name == current else "")
    text_y = box.y + (17 if box.kind == "parallel" else box.h / 2 - 1)
    caption = ""
    if box.caption and box.kind != "parallel":
        caption = (
            f'<text class="caption" x="{box.cx:.0f}" y="{box.y + box.h - 8:.0f}" '
            f'text-anchor="middle">{escape(box.caption)}</text>'
        )
    current_attr = ' aria-current="step"' if box.name == current else ""
    name_class = "name long" if len(label) > LONG_LABEL else "name"
    return (
        f'<g class="{" ".join(classes)}" id="state-{escape(box.name)}" '
        f'data-state="{escape(box.name)}"{current_attr}><title>{escape(title)}</title>'
        f'<rect x="{box.x:.0f}" y="{box.y:.0f}" width="{box.w:.0f}" height="{box.h:.0f}" '
        f'rx="8"/><text class="{name_class}" x="{box.cx:.0f}" y="{text_y:.0f}" '
        f'text-anchor="middle">{escape(label)}</text>{caption}</g>'
    )


def _marker(marker_id: str, colour: str) -> str:
    return (
        f'<marker id="{marker_id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{colour}"/></marker>'
    )
