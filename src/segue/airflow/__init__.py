"""Airflow-facing code of Segue, shaped like an Airflow provider (hooks, operators, ...)."""
