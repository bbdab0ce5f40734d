"""Running Segue on one machine: processes and ports (tools.processes, tools.ports), a local
Airflow, the gateway and services as processes, the `segue` CLI."""
