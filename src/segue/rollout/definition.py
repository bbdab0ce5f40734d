"""What a traffic split says: weights per path, targeting rules, the sticky key and the kill switch.

Weights are whole percentages summing to 100 (``dag=90,events=10``); inside, each percent is 100
of the 10,000 buckets an evaluation hashes the sticky key into (:mod:`segue.rollout.layout`).
Rules run before the weights, first match wins; the kill switch sends every new decision to the
baseline. A definition is checked against the paths a workflow declares (:class:`FlagSpec`), and
every refusal is a :class:`RolloutError` naming the field.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

TOTAL_PERCENT = 100


class RolloutError(ValueError):
    """A flag definition, change or evaluation refused; ``field`` names what is wrong.

    :param field: the offending field, dotted (``weights``, ``rules[0].value``, ``baseline``).
    :param message: what is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConcurrentChange(RolloutError):
    """Someone else changed the flag first: the version expected is no longer the latest."""


class Operator(StrEnum):
    """How a rule compares an evaluation-context attribute with its value."""

    EQ = "=="
    IN = "in"
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="


ORDERING = frozenset({Operator.GT, Operator.GE, Operator.LT, Operator.LE})


def as_decimal(value: Any) -> Decimal | None:
    """``value`` as a finite Decimal, or None when it is not a number (bools are not numbers).

    :param value: a context attribute or a rule value (str, int, float, Decimal).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int | float | str):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


class Rule(BaseModel):
    """``attribute operator value -> path``: a targeting rule, evaluated before the weights.

    Numbers compare as Decimal (``amount > 500`` matches ``"500.01"``); ``==`` and ``in``
    compare numerically when both sides are numbers, else as strings.

    :param attribute: the evaluation-context attribute (``amount``, ``currency``, ...).
    :param operator: one of ``==``, ``in``, ``>``, ``>=``, ``<``, ``<=``.
    :param value: one value, or several for ``in``; a number for the ordering operators.
    :param path: where a matching subject goes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attribute: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    operator: Operator
    value: str | tuple[str, ...]
    path: str = Field(min_length=1, max_length=100)

    @field_validator("value", mode="before")
    @classmethod
    def _text_values(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(_text(each) for each in value)
        return _text(value)

    @field_validator("value")
    @classmethod
    def _fits_operator(cls, value: str | tuple[str, ...], info: ValidationInfo) -> Any:
        operator = info.data.get("operator")
        if operator is Operator.IN:
            if not isinstance(value, tuple) or not value:
                raise ValueError("'in' needs a non-empty list of values")
        elif isinstance(value, tuple):
            raise ValueError(f"{operator} takes one value, not a list")
        if operator in ORDERING and as_decimal(value) is None:
            raise ValueError(f"{operator} needs a number, got {value!r}")
        return value

    def describe(self) -> str:
        """The rule as the CLI writes it: ``amount>500=dag``, ``currency in [JPY,KRW]=saga``."""
        if isinstance(self.value, tuple):
            return f"{self.attribute} in [{','.join(self.value)}]={self.path}"
        return f"{self.attribute}{self.operator.value}{self.value}={self.path}"


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal):
        return str(value)
    return value


class SplitDefinition(BaseModel):
    """One version of a traffic split: what new subjects get, evaluated in process.

    :param weights: percent of subjects per path (whole numbers summing to 100); a path left
        out gets 0.
    :param baseline: where the kill switch sends every new decision; one of the paths.
    :param sticky_key: the evaluation-context attribute hashed into a bucket (``order_id``,
        ``customer_email``, ...): equal values always land in the same bucket.
    :param rules: targeting rules, first match wins, before the weights.
    :param killed: the kill switch: every new decision goes to ``baseline``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[str, int]
    baseline: str = Field(min_length=1, max_length=100)
    sticky_key: str = Field(
        default="order_id", min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$"
    )
    rules: tuple[Rule, ...] = ()
    killed: bool = False

    @field_validator("weights")
    @classmethod
    def _percentages(cls, weights: dict[str, int]) -> dict[str, int]:
        for path, weight in weights.items():
            if weight < 0:
                raise ValueError(f"the weight of {path!r} is negative ({weight})")
        total = sum(weights.values())
        if total != TOTAL_PERCENT:
            raise ValueError(f"weights must sum to {TOTAL_PERCENT}, they sum to {total}")
        return weights

    def share(self, path: str) -> int:
        """The percent of subjects ``path`` gets by weight (0 when not listed).

        :param path: a path name.
        """
        return self.weights.get(path, 0)


class FlagSpec(BaseModel):
    """What a workflow declares of one flag: its name, the paths it may route to, the baseline.

    With no version stored yet the flag sends 100% to ``baseline``.

    :param name: the flag's key (``route``).
    :param paths: the allowed paths, in the order new buckets are handed out.
    :param baseline: the default and kill-switch path; one of ``paths``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    paths: tuple[str, ...] = Field(min_length=1)
    baseline: str

    @field_validator("paths")
    @classmethod
    def _distinct(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(paths)) != len(paths) or not all(paths):
            raise ValueError(f"paths must be distinct, non-empty names: {paths}")
        return paths

    @field_validator("baseline")
    @classmethod
    def _among_paths(cls, baseline: str, info: ValidationInfo) -> str:
        paths = info.data.get("paths", ())
        if baseline not in paths:
            raise ValueError(f"baseline {baseline!r} is not one of the paths {paths}")
        return baseline

    def default_definition(self) -> SplitDefinition:
        """The split in force before any version: everything to the baseline."""
        return SplitDefinition(weights={self.baseline: TOTAL_PERCENT}, baseline=self.baseline)

    def check(self, data: SplitDefinition | dict[str, Any]) -> SplitDefinition:
        """``data`` checked for this flag, or a :class:`RolloutError` naming the field.

        :param data: a definition, or its JSON form (``weights``, ``baseline``, ...).
        """
        if isinstance(data, SplitDefinition):
            data = data.model_dump(mode="json")
        try:
            definition = SplitDefinition.model_validate(data)
        except ValidationError as error:
            raise _named(error) from None
        allowed = set(self.paths)
        for path in definition.weights:
            if path not in allowed:
                raise RolloutError(f"weights.{path}", f"unknown path; allowed: {_list(self.paths)}")
        if definition.baseline not in allowed:
            raise RolloutError(
                "baseline", f"unknown path {definition.baseline!r}; allowed: {_list(self.paths)}"
            )
        for index, rule in enumerate(definition.rules):
            if rule.path not in allowed:
                raise RolloutError(
                    f"rules[{index}].path",
                    f"unknown path {rule.path!r}; allowed: {_list(self.paths)}",
                )
        return definition


def _list(paths: tuple[str, ...]) -> str:
    return ", ".join(paths)


def _named(error: ValidationError) -> RolloutError:
    """The first problem of a pydantic error as a RolloutError with a dotted field name."""
    first = error.errors()[0]
    parts: list[str] = []
    for part in first["loc"]:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        elif part in {"str", "tuple[str, ...]"}:
            continue  # pydantic's union member names, not fields
        else:
            parts.append(str(part))
    message = str(first["msg"]).removeprefix("Value error, ")
    return RolloutError(".".join(parts) or "definition", message)


def flag_from_settings() -> FlagSpec:
    """The workflow's flag as this process's settings name it (``SEGUE_ROLLOUT_*``).

    Raises :class:`RolloutError` naming the variable when the paths or the baseline are unset
    or do not fit together.
    """
    from segue.settings import get_settings

    settings = get_settings()
    if not settings.rollout_paths:
        raise RolloutError(
            "SEGUE_ROLLOUT_PATHS", 'name the workflow\'s paths, e.g. ["dag", "events"]'
        )
    if not settings.rollout_baseline:
        raise RolloutError("SEGUE_ROLLOUT_BASELINE", "name the baseline path, e.g. dag")
    try:
        return FlagSpec(
            name=settings.rollout_flag,
            paths=settings.rollout_paths,
            baseline=settings.rollout_baseline,
        )
    except ValidationError as error:
        named = _named(error)
        raise RolloutError(f"SEGUE_ROLLOUT_{named.field.upper()}", named.message) from None
