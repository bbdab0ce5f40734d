"""Who may see and act on which saga: per DAG, through Airflow's auth manager.

A saga instance belongs to the DAGs its machine was registered with
(``segue.statemachine.registry.register(..., dag_ids=...)``). Reading an instance needs read
access to the runs of one of those DAGs; retrying or compensating it needs edit access (PUT)
to them, as clearing a DAG run does. A machine that names no DAG is treated as belonging to
every DAG: only users with access to all DAGs see or touch its instances. The decisions are
the auth manager's ``is_authorized_dag``, so FAB roles, Keycloak or the simple auth manager
apply as they do to Airflow's own pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Literal

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, HTTPException, status

from segue.airflow.plugin.deps import ServiceDep

Method = Literal["GET", "PUT"]
DagAuthorizer = Callable[[str | None, Method], bool]
"""``(dag_id or None for all DAGs, method) -> allowed``, for the current user."""


def dag_authorizer(user: GetUserDep) -> DagAuthorizer:
    """The current user's DAG-run permissions, asked of Airflow's auth manager (cached per request).

    :param user: the logged-in user (401 before this runs when there is none).
    """
    manager = get_auth_manager()
    decided: dict[tuple[str | None, Method], bool] = {}

    def allowed(dag_id: str | None, method: Method) -> bool:
        if (dag_id, method) not in decided:
            details = DagDetails(id=dag_id, team_name=_team_of(dag_id)) if dag_id else None
            decided[dag_id, method] = manager.is_authorized_dag(
                method=method, access_entity=DagAccessEntity.RUN, details=details, user=user
            )
        return decided[dag_id, method]

    return allowed


def requires_every_dag(method: Method, to: str) -> Callable[..., None]:
    """A dependency: 403 unless the user may ``method`` the runs of every DAG.

    Asked of the auth manager with no DAG named. Not Airflow's ``requires_access_dag``: with no
    ``dag_id`` in the path it takes one from the query string, so ``?dag_id=<a DAG the user
    may use>`` would narrow the check to that DAG.

    :param method: ``GET`` to read, ``PUT`` to edit.
    :param to: what the permission is for, in the refusal ("change the traffic split").
    """
    verb = "read" if method == "GET" else "edit"

    def check(authorize: Annotated[DagAuthorizer, Depends(dag_authorizer)]) -> None:
        if not authorize(None, method):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"you need permission to {verb} the runs of every DAG to {to}",
            )

    return check


may_read_every_dag_run = requires_every_dag("GET", "see an order's timeline")
"""An order's timeline shows any DAG's runs (tests override ``dag_authorizer``)."""

may_edit_every_dag_run = requires_every_dag("PUT", "change the traffic split")
"""Changing the split moves orders between every DAG's paths."""


def _team_of(dag_id: str) -> str | None:
    """The DAG's team (multi-team deployments), as ``requires_access_dag`` looks it up."""
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


@dataclass
class SagaAccess:
    """The current user's access to sagas, machine by machine."""

    authorize: DagAuthorizer
    dags_for: Callable[[str], tuple[str, ...]]
    _decided: dict[tuple[str, Method], bool] = field(default_factory=dict)

    def allows(self, machine: str, method: Method = "GET") -> bool:
        """True when the user may read (GET) or act on (PUT) instances of ``machine``.

        :param machine: the instances' machine name.
        :param method: ``GET`` to read, ``PUT`` to retry or compensate.
        """
        if (machine, method) not in self._decided:
            dags = self.dags_for(machine)
            self._decided[machine, method] = (
                any(self.authorize(dag_id, method) for dag_id in dags)
                if dags
                else self.authorize(None, method)
            )
        return self._decided[machine, method]

    def readable(self, machines: Iterable[str]) -> list[str] | None:
        """The machines among ``machines`` the user may read; None when that is all of them.

        :param machines: every machine some instance belongs to.
        """
        names = list(machines)
        allowed = [name for name in names if self.allows(name)]
        return None if len(allowed) == len(names) else allowed

    def require(self, machine: str, method: Method = "GET") -> None:
        """403 unless :meth:`allows`, naming the DAGs the user would need access to.

        :param machine: the instance's machine name.
        :param method: ``GET`` to read, ``PUT`` to retry or compensate.
        """
        if self.allows(machine, method):
            return
        dags = self.dags_for(machine)
        where = f"DAG {', '.join(dags)}" if dags else "every DAG"
        need = "edit" if method == "PUT" else "read"
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"you need permission to {need} the runs of {where} for sagas of {machine!r}",
        )


def saga_access(
    service: ServiceDep, authorize: Annotated[DagAuthorizer, Depends(dag_authorizer)]
) -> SagaAccess:
    """The current user's :class:`SagaAccess` (a FastAPI dependency).

    :param service: the app's saga service (knows which DAGs run each machine).
    :param authorize: the user's DAG permissions (tests override :func:`dag_authorizer`).
    """
    return SagaAccess(authorize, service.dags_for)


AccessDep = Annotated[SagaAccess, Depends(saga_access)]
