"""Copying the JSON documents the emulator stores."""

from __future__ import annotations

from typing import Any


def clone(obj: Any) -> Any:
    """A deep copy of a JSON document (dicts, lists, scalars).

    Every object the emulator hands out or takes in is copied, so a controller listing
    100,000 pods copies them all: this is 3-5x faster than ``copy.deepcopy``, which also
    handles cycles and arbitrary classes a JSON document never holds.
    """
    kind = type(obj)
    if kind is dict:
        return {k: clone(v) for k, v in obj.items()}
    if kind is list:
        return [clone(v) for v in obj]
    return obj
