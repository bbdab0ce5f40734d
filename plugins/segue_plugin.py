"""Registers Segue's Airflow plugin (saga pages at /segue); the code is in segue.airflow.plugin."""

from __future__ import annotations

from segue.airflow.plugin import SeguePlugin

__all__ = ["SeguePlugin"]
