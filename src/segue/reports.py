"""Report pages a workflow adds to the Segue plugin, as plain values (no Airflow here).

The plugin stays domain-free: a workflow names a *provider* per page in ``SEGUE_REPORT_PAGES``
(``{"operations": "my_workflow.reports:operations_page"}``), a function of no arguments that
returns a :class:`ReportPage`. The plugin adds a navigation entry per page and renders it
(``/segue/reports/<slug>``, and its JSON twin under ``/segue/api/reports/<slug>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from segue.imports import load_object

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class ReportTable(BaseModel):
    """A table of text cells; ``empty`` is shown when it has no rows."""

    model_config = ConfigDict(frozen=True)

    caption: str = ""
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...] = ()
    empty: str = "Nothing to show."

    @model_validator(mode="after")
    def _rows_fit(self) -> ReportTable:
        for number, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"rows[{number}] has {len(row)} cells for {len(self.columns)} columns"
                )
        return self


class ReportSection(BaseModel):
    """A heading with facts (label, value) and tables under it."""

    model_config = ConfigDict(frozen=True)

    heading: str
    facts: tuple[tuple[str, str], ...] = ()
    tables: tuple[ReportTable, ...] = ()
    status: str = Field(default="", description="A badge next to the heading (e.g. completed).")


class ReportPage(BaseModel):
    """One page: a title, an introduction, and its sections in order."""

    model_config = ConfigDict(frozen=True)

    title: str
    intro: str = ""
    sections: tuple[ReportSection, ...] = ()
    empty: str = "Nothing to report yet."


ReportProvider = Callable[[], ReportPage]


def nav_name(slug: str) -> str:
    """The navigation entry's name of a page: ``operations`` -> ``Operations``.

    :param slug: the page's slug.
    """
    return slug.replace("-", " ").title()


def check_slugs(pages: Mapping[str, str]) -> dict[str, str]:
    """``pages`` (slug -> ``module:attribute``) after checking every slug can be a URL part.

    :param pages: the configured report pages.
    :raises ValueError: a slug that is not lower-case letters, digits and dashes.
    """
    for slug in pages:
        if not SLUG.match(slug):
            raise ValueError(
                f"report page slug {slug!r}: use lower-case letters, digits and dashes"
            )
    return dict(pages)


def load_provider(path: str) -> ReportProvider:
    """The provider at ``module:attribute`` (a clear error if it is not callable).

    :param path: e.g. ``"my_workflow.reports:operations_page"``.
    """
    provider = load_object(path)
    if not callable(provider):
        raise TypeError(f"{path} is {type(provider).__name__}, not a report provider")
    return provider
