"""Shadow mode: mirror a share of the subjects a split sends elsewhere to a candidate path.

The switch (:mod:`segue.rollout.shadow.switch`) is a small audited, versioned setting per flag
(candidate path and percent, sticky by the split's own bucket), kept apart from the split's
definition (component ``segue.shadow``). The comparator (:mod:`segue.rollout.shadow.compare`)
matches each real subject with its shadow once both are terminal; the workflow supplies the
observations (``SEGUE_SHADOW_PAIRS``), as it supplies the Rollout page's figures. Domain-free.
"""

from __future__ import annotations

from segue.rollout.shadow.compare import (
    Mismatch,
    Observation,
    Pair,
    ShadowReport,
    build_report,
    compare_pair,
    load_pairs_provider,
)
from segue.rollout.shadow.switch import (
    ShadowSetting,
    ShadowSwitch,
    set_shadow,
    shadow_history,
    shadow_in_force,
)

__all__ = [
    "Mismatch",
    "Observation",
    "Pair",
    "ShadowReport",
    "ShadowSetting",
    "ShadowSwitch",
    "build_report",
    "compare_pair",
    "load_pairs_provider",
    "set_shadow",
    "shadow_history",
    "shadow_in_force",
]
