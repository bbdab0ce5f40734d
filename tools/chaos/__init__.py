"""Fault injection against a running Segue stack, and the payment invariants checked after it.

Shared by ``segue chaos`` (faults only, against any deployment), ``segue compare`` (the models
side by side) and the fault tests in ``tests/faults``.
"""
