"""Where the upstream reference data in ``../shared`` lives, and how tests skip without it.

The data (conformance checklists, pinned CRDs, chart values) is upstream's, not ours: it
sits beside the checkout and is never copied into it. ``AICP_SHARED`` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AICP_SHARED", REPO.parent / "shared")).resolve()
CRDS = SHARED / "crds"
CHARTS = SHARED / "charts"
CONFORMANCE = SHARED / "conformance"


def require_shared(*parts: str) -> Path:
    """Return ``SHARED/<parts>``; skip the calling test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"upstream reference data {path} is absent: clone with ../shared beside the "
            "checkout or set AICP_SHARED"
        )
    return path
