"""A small parser for the Prometheus text exposition format (not a probe).

Enough for what probes read: ``# HELP``/``# TYPE`` comments are skipped; a sample is
``name{label="value",...} value [timestamp]`` with ``\\"``, ``\\\\`` and ``\\n`` escapes
in label values. Malformed lines are collected, not fatal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*\"")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Exposition:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def series(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name]

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def parse(text: str) -> Exposition:
    out = Exposition()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.samples.append(_sample(line))
        except ValueError as exc:
            out.errors.append(f"line {number}: {exc}: {line[:120]}")
    return out


def _sample(line: str) -> Sample:
    match = _NAME.match(line)
    if not match:
        raise ValueError("no metric name")
    name, pos, labels = match.group(0), match.end(), {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = _labels(line, pos + 1)
    rest = line[pos:].split()
    if not rest or len(rest) > 2:
        raise ValueError("expected a value and an optional timestamp")
    return Sample(name, labels, _value(rest[0]))


def _labels(line: str, pos: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    while True:
        while pos < len(line) and line[pos] in " ,":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return labels, pos + 1
        match = _LABEL.match(line, pos)
        if not match:
            raise ValueError(f"bad label at column {pos + 1}")
        pos, chars = match.end(), []
        while True:
            if pos >= len(line):
                raise ValueError("unterminated label value")
            char = line[pos]
            if char == "\\" and pos + 1 < len(line):
                chars.append(_ESCAPES.get(line[pos + 1], "\\" + line[pos + 1]))
                pos += 2
            elif char == '"':
                pos += 1
                break
            else:
                chars.append(char)
                pos += 1
        labels[match.group(1)] = "".join(chars)


def _value(text: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"value {text!r} is not a number") from None
