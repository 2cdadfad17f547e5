"""The one error a stack configuration problem raises."""

from __future__ import annotations


class ConfigError(ValueError):
    """A stack configuration problem, as one line a person can act on."""
