"""The library's side of the figures: windows, percentiles, loading the workflow's provider."""

from __future__ import annotations

from datetime import timedelta

import pytest

from segue.rollout import RolloutError
from segue.rollout.figures import PathFigures, load_figures_provider, percentile, window_of


def test_windows_and_a_clear_error_for_others():
    assert window_of("15m") == timedelta(minutes=15)
    assert window_of("24h") == timedelta(hours=24)
    with pytest.raises(RolloutError) as refused:
        window_of("2h")
    assert refused.value.field == "window" and "15m, 1h, 24h" in refused.value.message


def test_nearest_rank_percentiles():
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (
        50.0,
        95.0,
        99.0,
    )
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="fraction"):
        percentile(values, 0)


def test_the_provider_is_loaded_by_import_path():
    assert load_figures_provider(None) is None and load_figures_provider("") is None
    provider = load_figures_provider("include.payments.rollout_figures:path_figures")
    assert provider is not None and provider.__name__ == "path_figures"
    with pytest.raises(TypeError, match="not callable"):
        load_figures_provider("segue.rollout.figures:WINDOWS")
    with pytest.raises(ValueError, match="module:attribute"):
        load_figures_provider("segue.rollout.figures")


def test_figures_are_frozen_and_never_negative():
    with pytest.raises(ValueError, match="accepted"):
        PathFigures(path="dag", accepted=-1, completed=0, failed_business=0,
                    failed_technical=0, in_flight=0)  # fmt: skip
