"""The schema registry in the repository: committed JSON Schemas of every event version.

``export_schemas`` writes ``schemas/events/<type>/v<version>.json`` (the payload's
``schema_id()``); ``check_schemas`` compares the committed files with the current models and
``compatibility_breaks`` says which changes break running producers or consumers.

Compatibility rule set (a model changed in place, same type and version):

- old events must stay valid under the new model (backward), and events of the new model must
  stay readable by consumers still on the old one (forward), so field values may neither narrow
  nor widen: a changed type, nullability, enum, const, pattern, format or bound is a break;
- removing a field (or renaming it: a removal plus an addition), adding a required field and
  making an optional field required are breaks;
- adding an optional field (it has a default) is allowed. Payloads forbid unknown fields, so
  consumers must be deployed before the producers that send the new field.

Descriptions, titles, defaults and field order may change freely.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segue.events.payload import EventPayload
from segue.events.registry import EventRegistry

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = "schemas/events"  # under a workflow's root: where schema_id() paths point
VALUE_KEYWORDS = (
    "const",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "additionalProperties",
)
UNION_KEYWORDS = ("anyOf", "oneOf")


def schema_of(model: type[EventPayload]) -> dict[str, Any]:
    """The JSON Schema (validation mode) of one payload model, with its id and dialect.

    :param model: the payload class.
    """
    return {"$schema": DIALECT, "$id": model.schema_id(), **model.model_json_schema()}


def render(schema: dict[str, Any]) -> str:
    """Stable text of a schema: sorted keys, two-space indent, trailing newline.

    :param schema: the JSON Schema.
    """
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_files(registry: EventRegistry) -> dict[str, str]:
    """Relative path -> file text of every model in ``registry``."""
    return {model.schema_id(): render(schema_of(model)) for model in registry}


def export_schemas(registry: EventRegistry, root: Path) -> list[Path]:
    """Write every model's schema under ``root``; returns the files that changed."""
    changed = []
    for relative, text in expected_files(registry).items():
        path = root / relative
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        changed.append(path)
    return changed


@dataclass
class SchemaCheck:
    """Committed schemas against the current models."""

    breaks: list[str] = field(default_factory=list)  # "<type> v<n>: <break>"
    out_of_date: list[str] = field(default_factory=list)  # compatible, but the file differs
    new: list[str] = field(default_factory=list)  # models without a committed file yet

    @property
    def ok(self) -> bool:
        """True when nothing breaks, is out of date or is new."""
        return not (self.breaks or self.out_of_date or self.new)


def check_schemas(registry: EventRegistry, root: Path) -> SchemaCheck:
    """Compare every committed schema under ``root`` with the current models of ``registry``."""
    result = SchemaCheck()
    expected = expected_files(registry)
    for model in registry:
        path = root / model.schema_id()
        name = f"{model.event_type} v{model.schema_version}"
        if not path.exists():
            result.new.append(f"{name} ({model.schema_id()})")
            continue
        committed = json.loads(path.read_text())
        result.breaks += [f"{name}: {b}" for b in compatibility_breaks(committed, schema_of(model))]
        if path.read_text() != expected[model.schema_id()]:
            result.out_of_date.append(f"{name} ({model.schema_id()})")
    for path in sorted((root / SCHEMA_DIR).glob("*/v*.json")):
        relative = path.relative_to(root).as_posix()
        if relative not in expected:
            result.breaks.append(f"{relative}: committed, but no model supports it any more")
    return result


def compatibility_breaks(old_schema: dict[str, Any], new_schema: dict[str, Any]) -> list[str]:
    """Why events under ``new_schema`` and ``old_schema`` are not interchangeable (see above)."""
    breaks: list[str] = []
    _Comparison(old_schema, new_schema, breaks).compare(old_schema, new_schema, "", set())
    return breaks


@dataclass
class _Comparison:
    old_root: dict[str, Any]
    new_root: dict[str, Any]
    breaks: list[str]

    def compare(self, old: Any, new: Any, where: str, seen: set[tuple[str, str]]) -> None:
        refs = (old.get("$ref", ""), new.get("$ref", ""))
        if refs != ("", "") and refs in seen:
            return  # a recursive model: this pair is already being compared
        seen = seen | {refs}
        old, new = _resolve(old, self.old_root), _resolve(new, self.new_root)
        old_branches = _branches(old, self.old_root)
        new_branches = _branches(new, self.new_root)
        label = where or "payload"
        gone = [kind for kind in old_branches if kind not in new_branches]
        added = [kind for kind in new_branches if kind not in old_branches]
        if gone:
            self.breaks.append(
                f"{label}: type changed, no longer accepts {', '.join(gone)} (old events fail)"
            )
        if added:
            self.breaks.append(
                f"{label}: type changed, now allows {', '.join(added)} (old consumers fail)"
            )
        for kind, old_branch in old_branches.items():
            if kind in new_branches:
                self._compare_one(old_branch, new_branches[kind], where, seen)

    def _compare_one(self, old: dict, new: dict, where: str, seen: set[tuple[str, str]]) -> None:
        label = where or "payload"
        self._compare_enum(old, new, label)
        for keyword in VALUE_KEYWORDS:
            before, after = old.get(keyword), new.get(keyword)
            if isinstance(before, dict) and isinstance(after, dict):  # additionalProperties
                self.compare(before, after, f"{where}{{*}}", seen)
            elif before != after:
                self.breaks.append(
                    f"{label}: {keyword} changed from {_show(before)} to {_show(after)}"
                )
        self._compare_properties(old, new, where, seen)
        if "items" in old or "items" in new:
            self.compare(old.get("items", {}), new.get("items", {}), f"{where}[]", seen)
        old_prefix, new_prefix = old.get("prefixItems", []), new.get("prefixItems", [])
        if len(old_prefix) != len(new_prefix):
            self.breaks.append(
                f"{label}: tuple length changed from {len(old_prefix)} to {len(new_prefix)}"
            )
        for index, (before, after) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            self.compare(before, after, f"{where}[{index}]", seen)

    def _compare_enum(self, old: dict, new: dict, label: str) -> None:
        if "enum" not in old and "enum" not in new:
            return
        if "enum" not in old or "enum" not in new:
            state = "added" if "enum" in new else "removed"
            self.breaks.append(f"{label}: enum {state} ({_show(new.get('enum', old.get('enum')))})")
            return
        removed = [value for value in old["enum"] if value not in new["enum"]]
        added = [value for value in new["enum"] if value not in old["enum"]]
        if removed:
            self.breaks.append(
                f"{label}: enum narrowed, {_show(removed)} removed (old events fail)"
            )
        if added:
            self.breaks.append(f"{label}: enum widened, {_show(added)} added (old consumers fail)")

    def _compare_properties(self, old: dict, new: dict, where: str, seen: set) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        prefix = f"{where}." if where else ""
        for name, schema in old_props.items():
            if name not in new_props:
                self.breaks.append(f"{prefix}{name}: field removed (or renamed)")
                continue
            if name not in old_required and name in new_required:
                self.breaks.append(f"{prefix}{name}: optional field became required")
            self.compare(schema, new_props[name], prefix + name, seen)
        for name in new_props:
            if name not in old_props and name in new_required:
                self.breaks.append(f"{prefix}{name}: required field added (old events lack it)")


def _resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref``s (``#/$defs/Name``); sibling keywords override the target's."""
    seen = set()
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise ValueError(f"cannot resolve $ref {ref!r}")
        seen.add(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        siblings = {key: value for key, value in schema.items() if key != "$ref"}
        schema = {**target, **siblings}
    return schema if isinstance(schema, dict) else {}


def _branches(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The alternatives a value may match, keyed by kind (its JSON type, or 'any')."""
    for keyword in UNION_KEYWORDS:
        if keyword in schema:
            found: dict[str, dict[str, Any]] = {}
            for option in schema[keyword]:
                found.update(_branches(_resolve(option, root), root))
            return found
    types = schema.get("type")
    if isinstance(types, list):
        return {kind: {**schema, "type": kind} for kind in types}
    if types is None:
        if "enum" in schema or "const" in schema:
            return {"enum": schema}
        return {"any": schema}
    return {str(types): schema}


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)
