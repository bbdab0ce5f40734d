"""Airflow sensors of Segue: wait for events on the bus without holding a worker slot."""
