"""The schema registry checked in CI: committed JSON Schemas against the current payload models."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from include.payments.events import PAYMENT_EVENTS, ChargeCompleted, OrderPlaced
from include.workflow import PROJECT_ROOT
from segue.events.registry import EventRegistry
from segue.events.schemas import (
    check_schemas,
    compatibility_breaks,
    export_schemas,
    render,
    schema_of,
)

MODELS = list(PAYMENT_EVENTS)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m.event_type}-v{m.schema_version}")
def test_model_is_compatible_with_its_committed_schema(model: Any) -> None:
    path = PROJECT_ROOT / model.schema_id()
    if not path.exists():
        pytest.fail(
            f"{model.event_type} v{model.schema_version} is new: no committed schema at "
            f"{model.schema_id()}; run `segue events export-schemas` and commit it"
        )
    breaks = compatibility_breaks(json.loads(path.read_text()), schema_of(model))
    assert not breaks, (
        f"{model.event_type} v{model.schema_version} breaks its committed schema "
        f"{model.schema_id()}:\n  "
        + "\n  ".join(breaks)
        + "\nA breaking change needs a new schema version (a new model class)."
    )


def test_committed_schemas_are_up_to_date() -> None:
    result = check_schemas(PAYMENT_EVENTS, PROJECT_ROOT)
    assert result.breaks == []
    assert result.new == [], f"not committed yet: {result.new}"
    assert result.out_of_date == [], (
        f"compatible but out of date: {result.out_of_date}; run `segue events export-schemas`"
    )


def test_schema_file_path_is_the_schema_id() -> None:
    for model in MODELS:
        text = (PROJECT_ROOT / model.schema_id()).read_text()
        assert json.loads(text)["$id"] == model.schema_id()
        assert text.endswith("}\n")
        assert text == render(json.loads(text)), "keys must be sorted, two-space indent"


def test_export_and_check_in_an_empty_tree_report_new_then_nothing(tmp_path: Path) -> None:
    registry = EventRegistry([OrderPlaced, ChargeCompleted])
    first = check_schemas(registry, tmp_path)
    assert len(first.new) == 2 and not first.breaks and not first.out_of_date
    written = export_schemas(registry, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(
        [OrderPlaced.schema_id(), ChargeCompleted.schema_id()]
    )
    assert check_schemas(registry, tmp_path).ok
    assert export_schemas(registry, tmp_path) == [], "a second export changes nothing"


def test_check_reports_break_out_of_date_and_orphan(tmp_path: Path) -> None:
    registry = EventRegistry([ChargeCompleted])
    export_schemas(registry, tmp_path)
    path = tmp_path / ChargeCompleted.schema_id()
    committed = json.loads(path.read_text())
    committed["properties"]["legacy"] = {"type": "string"}  # the model "lost" this field
    committed["description"] = "changed"
    path.write_text(render(committed))
    orphan = tmp_path / "schemas/events/segue.payments.Gone/v1.json"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("{}\n")
    result = check_schemas(registry, tmp_path)
    assert result.breaks == [
        "segue.payments.ChargeCompleted v1: legacy: field removed (or renamed)",
        "schemas/events/segue.payments.Gone/v1.json: committed, but no model supports it any more",
    ]
    assert result.out_of_date == [
        f"segue.payments.ChargeCompleted v1 ({path.relative_to(tmp_path)})"
    ]


# --- compatibility_breaks on synthetic schemas, one per kind of change --------------------------

BASE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "order_id": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 64},
        "amount": {"anyOf": [{"type": "number"}, {"type": "string"}]},
        "status": {"type": "string", "enum": ["ok", "failed"]},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}, "minItems": 1},
    },
    "required": ["order_id", "amount", "status", "lines"],
    "$defs": {
        "Line": {
            "type": "object",
            "properties": {
                "sku": {"type": "string"},
                "quantity": {"type": "integer", "minimum": 1},
            },
            "required": ["sku", "quantity"],
        }
    },
}


def changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    edit(schema)
    return schema


def test_identical_and_cosmetic_changes_are_compatible() -> None:
    assert compatibility_breaks(BASE, copy.deepcopy(BASE)) == []

    def cosmetic(s: dict) -> None:
        s["description"] = "new words"
        s["properties"]["order_id"]["title"] = "Order"
        s["required"] = list(reversed(s["required"]))
        s["properties"]["note"]["default"] = "x"

    assert compatibility_breaks(BASE, changed(cosmetic)) == []


def test_adding_an_optional_field_is_compatible() -> None:
    def add(s: dict) -> None:
        s["properties"]["channel"] = {"type": "string", "default": "web"}
        s["$defs"]["Line"]["properties"]["gift"] = {"type": "boolean", "default": False}

    assert compatibility_breaks(BASE, changed(add)) == []


def test_required_field_may_become_optional() -> None:
    assert compatibility_breaks(BASE, changed(lambda s: s["required"].remove("status"))) == []


BREAKS = {
    "removed field": (lambda s: s["properties"].pop("note"), ["note: field removed (or renamed)"]),
    "renamed field": (
        lambda s: (
            s["properties"].__setitem__("id", s["properties"].pop("order_id")),
            s["required"].__setitem__(0, "id"),
        ),
        ["order_id: field removed (or renamed)", "id: required field added (old events lack it)"],
    ),
    "required field added": (
        lambda s: (s["properties"].__setitem__("x", {"type": "string"}), s["required"].append("x")),
        ["x: required field added (old events lack it)"],
    ),
    "optional made required": (
        lambda s: s["required"].append("note"),
        ["note: optional field became required"],
    ),
    "type changed": (
        lambda s: s["properties"]["order_id"].__setitem__("type", "integer"),
        [
            "order_id: type changed, no longer accepts string (old events fail)",
            "order_id: type changed, now allows integer (old consumers fail)",
        ],
    ),
    "union narrowed": (
        lambda s: s["properties"].__setitem__("amount", {"type": "string"}),
        ["amount: type changed, no longer accepts number (old events fail)"],
    ),
    "made nullable": (
        lambda s: s["properties"].__setitem__(
            "status", {"anyOf": [s["properties"]["status"], {"type": "null"}]}
        ),
        ["status: type changed, now allows null (old consumers fail)"],
    ),
    "enum narrowed": (
        lambda s: s["properties"]["status"]["enum"].remove("failed"),
        ['status: enum narrowed, ["failed"] removed (old events fail)'],
    ),
    "enum widened": (
        lambda s: s["properties"]["status"]["enum"].append("pending"),
        ['status: enum widened, ["pending"] added (old consumers fail)'],
    ),
    "pattern narrowed": (
        lambda s: s["properties"]["order_id"].__setitem__("pattern", "^[a-z]{3}$"),
        ['order_id: pattern changed from "^[a-z]+$" to "^[a-z]{3}$"'],
    ),
    "constraint narrowed": (
        lambda s: s["properties"]["order_id"].__setitem__("maxLength", 10),
        ["order_id: maxLength changed from 64 to 10"],
    ),
    "constraint added": (
        lambda s: s["properties"]["status"].__setitem__("minLength", 3),
        ["status: minLength changed from (none) to 3"],
    ),
    "extra fields now allowed": (
        lambda s: s.__setitem__("additionalProperties", True),
        ["payload: additionalProperties changed from false to true"],
    ),
    "nested $defs field removed": (
        lambda s: s["$defs"]["Line"]["properties"].pop("quantity"),
        ["lines[].quantity: field removed (or renamed)"],
    ),
    "nested $defs constraint narrowed": (
        lambda s: s["$defs"]["Line"]["properties"]["quantity"].__setitem__("minimum", 2),
        ["lines[].quantity: minimum changed from 1 to 2"],
    ),
    "array item type changed": (
        lambda s: s["properties"]["lines"].__setitem__("items", {"type": "string"}),
        [
            "lines[]: type changed, no longer accepts object (old events fail)",
            "lines[]: type changed, now allows string (old consumers fail)",
        ],
    ),
}


@pytest.mark.parametrize("kind", list(BREAKS))
def test_each_kind_of_break_is_reported(kind: str) -> None:
    edit, expected = BREAKS[kind]
    assert compatibility_breaks(BASE, changed(edit)) == expected


def test_inline_model_and_ref_to_the_same_model_are_equal() -> None:
    """Pydantic may move a nested model between $defs and inline; that is no change."""
    inline = changed(lambda s: s["properties"]["lines"].__setitem__("items", s["$defs"]["Line"]))
    inline.pop("$defs")
    assert compatibility_breaks(BASE, inline) == []
    assert compatibility_breaks(inline, BASE) == []


def test_recursive_models_terminate() -> None:
    node = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }
        },
        "$ref": "#/$defs/Node",
    }
    narrower = copy.deepcopy(node)
    narrower["$defs"]["Node"]["properties"]["children"]["maxItems"] = 3
    assert compatibility_breaks(node, node) == []
    assert compatibility_breaks(node, narrower) == ["children: maxItems changed from (none) to 3"]


def test_real_model_change_is_named_by_the_check() -> None:
    """A breaking edit of a real payment model is caught against its committed file."""
    committed = json.loads((PROJECT_ROOT / OrderPlaced.schema_id()).read_text())
    edited = copy.deepcopy(schema_of(OrderPlaced))
    edited["$defs"]["Order"]["properties"]["currency"]["pattern"] = "^(USD|EUR)$"
    assert compatibility_breaks(committed, edited) == [
        'order.currency: pattern changed from "^[A-Z]{3}$" to "^(USD|EUR)$"'
    ]
