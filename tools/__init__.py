"""Running Segue on one machine: background processes, a local Airflow, the `segue` CLI."""
