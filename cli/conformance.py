"""Requirement levels for ``aicp plan``, which works offline, without the template.

Their one home is ``verify/checklist.py`` (``LEVELS``, held to cncf/k8s-ai-conformance's
``docs/AIConformance-<minor>.yaml`` by a test); this module only names them for the CLI.
"""

from __future__ import annotations

from ..verify.checklist import LEVELS, musts

__all__ = ["LEVELS", "musts"]
