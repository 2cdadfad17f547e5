"""aicp's version, as installed: printed by ``aicp --version`` and in every report."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("aicp")
except PackageNotFoundError:  # a checkout run without installing it
    VERSION = "0+unknown"
