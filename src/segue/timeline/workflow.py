"""How a workflow plugs its parts into the timeline: a factory named in ``SEGUE_TIMELINE_SOURCES``.

The factory takes the business store's engine and returns a :class:`WorkflowTimeline`: the
workflow's sources (its tables) and, for the Airflow part, which DAG runs took the subject
over. The library adds the Airflow source itself (REST in the CLI, metadata in the plugin).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from segue.timeline.model import TimelineSource


class DagRunRef(BaseModel):
    """A DAG run that worked on the subject, by its id or by what its conf holds.

    :param dag_id: the DAG.
    :param run_id: the run's id; None to find the DAG's runs by ``conf`` instead.
    :param conf: with no ``run_id``: the conf items a run must hold (e.g. the order id), for
        runs triggered by hand under an id of Airflow's choosing.
    :param expected: True when the subject's route says this run exists (a run that is not
        found is then shown as such); False for a candidate only looked for.
    """

    model_config = ConfigDict(frozen=True)

    dag_id: str
    run_id: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)
    expected: bool = True


def _no_runs(_subject: str) -> Sequence[DagRunRef]:
    return ()


@dataclass(frozen=True)
class WorkflowTimeline:
    """What a workflow contributes to a subject's timeline.

    :param sources: readers of the workflow's own records (orders, payments, routes...).
    :param dag_runs: ``subject -> DAG runs`` to read from Airflow (none for other paths).
    """

    sources: tuple[TimelineSource, ...]
    dag_runs: Callable[[str], Sequence[DagRunRef]] = field(default=_no_runs)


TimelineFactory = Callable[[Engine], WorkflowTimeline]
"""``engine -> WorkflowTimeline``: what ``SEGUE_TIMELINE_SOURCES`` names."""


def load_timeline_factory(path: str | None) -> TimelineFactory:
    """The factory at ``module:attribute``; a clear error when unset or not callable.

    :param path: the value of ``SEGUE_TIMELINE_SOURCES``.
    """
    if not path:
        raise ValueError("no timeline sources: set SEGUE_TIMELINE_SOURCES='module:attribute'")
    from segue.imports import load_object

    factory = load_object(path)
    if not callable(factory):
        raise TypeError(f"SEGUE_TIMELINE_SOURCES={path} is {type(factory).__name__}, not callable")
    return factory  # type: ignore[no-any-return]
