"""Check that the chart values we set exist in the pinned chart's upstream ``values.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.shared import require_shared


def upstream_values(chart_dir: str) -> dict[str, Any]:
    """``../shared/charts/<chart_dir>/values.yaml``; skips the test when it is absent."""
    path = require_shared("charts", chart_dir, "values.yaml")
    return yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def unknown_value_paths(ours: Any, upstream: Any, path: str = "") -> list[str]:
    """Key paths we set that the chart does not define.

    Below an upstream map that is empty (``nodeSelector: {}``, ``podAnnotations: {}``) the
    keys are the user's to choose; below a list or a scalar nothing can be checked.
    """
    if not isinstance(ours, dict) or not isinstance(upstream, dict) or not upstream:
        return []
    missing = []
    for key, value in ours.items():
        here = f"{path}.{key}" if path else str(key)
        if key not in upstream:
            missing.append(here)
        else:
            missing += unknown_value_paths(value, upstream[key], here)
    return missing
