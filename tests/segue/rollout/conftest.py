"""Rollout fixtures: a flag of its own per test (flag versions are kept forever, by name)."""

from __future__ import annotations

import uuid

import pytest

from segue.rollout import FlagSpec

PATHS = ("dag", "saga", "hybrid", "events")


@pytest.fixture
def flag() -> FlagSpec:
    """The payment workflow's paths under a flag name no other test uses."""
    return FlagSpec(name=f"route-{uuid.uuid4().hex[:10]}", paths=PATHS, baseline="dag")


@pytest.fixture
def subject() -> object:
    """A factory of subject ids no other test uses."""

    def make(label: str = "ord") -> str:
        return f"{label}-{uuid.uuid4().hex[:16]}"

    return make
