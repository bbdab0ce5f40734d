"""The Mermaid diagram: transitions with their events and guards, the parallel as concurrent
regions, the UNDO_ chain, the highlight classes, and every referenced state declared."""

from __future__ import annotations

import re

import pytest

from segue.statemachine.definition import State, StateMachineDefinition, Transition
from segue.statemachine.diagram import to_mermaid


def _t(event: str, target: str, guard: str | None = None) -> Transition:
    return Transition(event=event, target=target, guard=guard)


MACHINE = StateMachineDefinition(
    name="small",
    initial="A",
    states=(
        State(name="A", kind="task", action="reserve", compensation="release",
              description="Reserve: first step",
              transitions=(_t("done", "P"), _t("failed", "FAILED"))),
        State(name="P", kind="parallel", branches=("B", "C"),
              transitions=(_t("done", "D"), _t("failed", "FAILED"))),
        State(name="B", kind="task", action="charge", compensation="refund",
              transitions=(_t("done", "D"),)),
        State(name="C", kind="task", action="notify", pivot=True, transitions=(_t("done", "D"),)),
        State(name="D", kind="task", action="ship", pivot=True,
              transitions=(_t("done", "VIP", "vip"), _t("done", "DONE"), _t("failed", "FAILED"))),
        State(name="VIP", kind="succeed"),
        State(name="DONE", kind="succeed"),
        State(name="FAILED", kind="fail"),
    ),
)  # fmt: skip

TRANSITION = re.compile(r"^\s*(\[\*\]|\w+) --> (\[\*\]|\w+)(?: : (.+))?$")


@pytest.fixture(scope="module")
def text() -> str:
    return to_mermaid(MACHINE, current="D", visited=["A", "P", "B", "D", "NOT_A_STATE"])


def test_header_and_start(text):
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert "    [*] --> A" in lines


def test_every_transition_is_labelled_with_its_event_and_guard(text):
    for line in (
        "A --> P : done",
        "A --> FAILED : failed",
        "P --> D : done",
        "D --> VIP : done [vip]",
        "D --> DONE : done",
        "VIP --> [*]",
        "DONE --> [*]",
        "FAILED --> [*]",
    ):
        assert f"    {line}" in text.splitlines(), line
    assert "B --> D" not in text, "branch transitions are the parallel's join, not edges"


def test_parallel_is_a_composite_with_one_region_per_branch(text):
    block = re.search(r"state P \{\n(.*?)\n    \}", text, re.S)
    assert block, text
    regions = block.group(1).split("\n        --\n")
    assert len(regions) == 2
    assert "[*] --> B" in regions[0] and "B --> [*]" in regions[0]
    assert "[*] --> C" in regions[1] and "C --> [*]" in regions[1]


def test_compensation_chain_runs_newest_first_from_the_fail_state(text):
    edges = {
        (m[1], m[2]): m[3]
        for m in map(TRANSITION.match, text.splitlines())
        if m and m[3] == "compensate"
    }
    assert edges == {
        ("FAILED", "UNDO_B"): "compensate",
        ("UNDO_B", "UNDO_A"): "compensate",
        ("UNDO_A", "COMPENSATED"): "compensate",
    }
    assert "    UNDO_A --> COMPENSATION_FAILED : failed" in text
    assert "    class UNDO_B,UNDO_A compensation" in text
    assert "UNDO_C" not in text and "UNDO_D" not in text, "pivots have nothing to undo"


def test_current_and_visited_classes(text):
    assert "classDef current " in text and "classDef visited " in text
    assert "    class D current" in text
    assert "    class A,P,B visited" in text, "current is not also visited; unknown names dropped"
    assert "NOT_A_STATE" not in text


def test_descriptions_keep_the_text_parseable(text):
    assert "    A : Reserve - first step" in text


def test_every_referenced_state_is_declared(text):
    declared = set(re.findall(r"^\s*state (\w+)", text, re.M))
    referenced = set()
    for line in text.splitlines():
        match = TRANSITION.match(line)
        if match:
            referenced |= {match[1], match[2]} - {"[*]"}
        if line.strip().startswith("class "):
            referenced |= set(line.split()[1].split(","))
    assert referenced <= declared, referenced - declared
    assert {"UNDO_A", "UNDO_B", "COMPENSATED", "COMPENSATION_FAILED"} <= declared


def test_no_highlight_without_an_instance():
    text = to_mermaid(MACHINE)
    assert "class D current" not in text
    assert " visited\n" not in text.split("classDef visited")[1]
