"""What the upstream tools print, read into numbers (pure functions, no cluster).

Each parser names the output it reads; ``tests/verify/performance/fixtures`` holds real
captures of each, with their sources.

- ``nccl_table``: nccl-tests' result table (NVIDIA/nccl-tests src/common.cu: one row per
  size, ``size count type redop [root] time algbw busbw #wrong`` out-of-place then the same
  in-place; ``# Avg bus bandwidth : X`` at the end). Older builds have no ``root`` column.
- ``nccl_transport``: NCCL's ``NCCL_DEBUG=INFO`` lines ``NCCL INFO Using network <name>``
  (NVIDIA/nccl src/init.cc) and ``NCCL INFO NET/<name> ...`` (each net plugin's prefix).
- ``dcgm_diag``: ``dcgmi diag -j`` JSON (NVIDIA/DCGM nvvs/include/JsonOutput.h:
  ``{"DCGM GPU Diagnostic": {"test_categories": [{"category", "tests": [{"name",
  "results": [{"gpu_ids", "status", "warnings"?}]}]}], "version"}}``; status one of
  PASS, FAIL, WARN, SKIP).
- ``clock_events``: ``nvidia-smi -q -d PERFORMANCE`` ("Clocks Event Reasons", called "Clocks
  Throttle Reasons" before driver 535), per GPU, reason -> Active / Not Active.
- ``bench``: the lines ``BENCH_SCRIPT`` (run.py) prints: ``AICP-BENCH gpu=<i> <key>=<value>``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field


class ParseError(ValueError):
    """The output is not what the tool prints: one line saying what was missing."""


@dataclass(frozen=True)
class NcclRow:
    size: int
    busbw_out: float
    busbw_in: float


@dataclass(frozen=True)
class NcclResult:
    rows: tuple[NcclRow, ...]
    avg_busbw: float | None

    @property
    def busbw(self) -> float:
        """Bus bandwidth at the largest message size (GB/s), the better of out-of-place and
        in-place: what the fabric sustains once latency no longer counts (aicr's validator
        also reads the largest size's row)."""
        last = max(self.rows, key=lambda r: r.size)
        return max(last.busbw_out, last.busbw_in)


_AVG = re.compile(r"#\s*Avg bus bandwidth\s*:\s*([\d.]+)")


# OpenMPI's --tag-output prefix (``[1,0]<stdout>:``), as mpirun-launched logs often carry.
_TAG = re.compile(r"^\[\d+,\d+\]<std(?:out|err)>:")


def nccl_table(text: str) -> NcclResult:
    rows = []
    for line in text.splitlines():
        row = _row(_TAG.sub("", line).split())
        if row:
            rows.append(row)
    if not rows:
        raise ParseError("no nccl-tests result row (size count type redop ... busbw) in the "
                         "output")
    avg = _AVG.search(text)
    return NcclResult(tuple(rows), float(avg.group(1)) if avg else None)


def _row(words: list[str]) -> NcclRow | None:
    """A result row: 12 fields (``size count type redop`` then time, algbw, busbw, error
    out-of-place and in-place) or 13 with ``root`` after ``redop`` (nccl-tests 2.13+)."""
    if len(words) not in (12, 13) or not (words[0].isdigit() and words[1].isdigit()):
        return None
    at = 4 if len(words) == 12 else 5
    try:
        return NcclRow(int(words[0]), float(words[at + 2]), float(words[at + 6]))
    except ValueError:
        return None


_USING = re.compile(r"NCCL INFO Using network (.+?)\s*$", re.M)
_NET = re.compile(r"NCCL INFO NET/([A-Za-z][\w-]*)")


def nccl_transport(text: str) -> str | None:
    """The network NCCL chose: its ``Using network X`` line, else the ``NET/X`` prefix of
    its INFO lines other than the plugin loader's; None when NCCL said neither."""
    chosen = _USING.findall(text)
    if chosen:
        return chosen[-1]
    nets = [n for n in _NET.findall(text) if n != "Plugin"]
    return nets[-1] if nets else None


@dataclass
class DiagResult:
    version: str
    # gpu id -> [(category, test, status, warnings)]
    per_gpu: dict[int, list[tuple[str, str, str, list[str]]]] = field(default_factory=dict)

    def failures(self, gpu: int) -> list[str]:
        return [f"{cat}/{test}: {status}" + (f" ({'; '.join(w)})" if w else "")
                for cat, test, status, w in self.per_gpu.get(gpu, [])
                if status.upper() in ("FAIL", "FAILED")]


def _gpu_ids(value) -> list[int]:
    if isinstance(value, int):
        return [value]
    return [int(v) for v in str(value).split(",") if v.strip().isdigit()]


def _warnings(result: dict) -> list[str]:
    out = []
    for w in result.get("warnings") or []:
        out.append(str(w.get("warning", w)) if isinstance(w, dict) else str(w))
    return out


def dcgm_diag(text: str) -> DiagResult:
    """``dcgmi diag -j`` output; text before the JSON (dcgmi may print a warning line
    first, as in DCGM's own "Deserialize real output" test) is skipped."""
    start = text.find("{")
    if start < 0:
        raise ParseError("no JSON object in the dcgmi diag output")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError as exc:
        raise ParseError(f"dcgmi diag printed invalid JSON ({exc})") from None
    root = doc.get("DCGM GPU Diagnostic") if isinstance(doc, dict) else None
    if not isinstance(root, dict) or not isinstance(root.get("test_categories"), list):
        raise ParseError("dcgmi diag JSON has no \"DCGM GPU Diagnostic\".test_categories")
    diag = DiagResult(str(root.get("version", "")))
    for category in root["test_categories"]:
        if not isinstance(category, dict):
            continue
        for test in category.get("tests") or []:
            if not isinstance(test, dict):  # DCGM 3.1 writes nulls between tests
                continue
            for result in test.get("results") or []:
                for gpu in _gpu_ids(result.get("gpu_ids", "")):
                    diag.per_gpu.setdefault(gpu, []).append(
                        (str(category.get("category", "")), str(test.get("name", "")),
                         str(result.get("status", "")), _warnings(result)))
    if not diag.per_gpu:
        raise ParseError("dcgmi diag JSON lists no result for any GPU")
    return diag


_GPU_HEADER = re.compile(r"^GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)\s*$")
_REASONS = re.compile(r"^\s*Clocks (Event|Throttle) Reasons\s*$")
UNNAMED = "(GPU not named)"  # an excerpt that starts at the reasons block
_REASON = re.compile(r"^\s+([A-Za-z][\w /-]*?)\s*:\s*(Active|Not Active)\s*$")

# Reasons that mean the GPU slowed down against its will: hardware slowdown (thermal, power
# brake) and software thermal slowdown (nvml.h nvmlClocksEventReason*: "HW Slowdown ...
# reducing the core clocks by a factor of 2 or more", "SW Thermal Slowdown"). Idle, the
# power cap under load, applications clocks, sync boost and display clocks are normal.
SLOWDOWNS = ("HW Slowdown", "HW Thermal Slowdown", "HW Power Brake Slowdown",
             "SW Thermal Slowdown")


def clock_events(text: str) -> dict[str, dict[str, bool]]:
    """PCI bus id -> reason -> active, for every GPU ``nvidia-smi -q -d PERFORMANCE`` lists."""
    found: dict[str, dict[str, bool]] = {}
    gpu, inside = None, False
    for line in text.splitlines():
        if m := _GPU_HEADER.match(line):
            gpu, inside = m.group(1), False
            found[gpu] = {}
            continue
        if _REASONS.match(line):
            if gpu is None:
                gpu = UNNAMED
                found[gpu] = {}
            inside = True
            continue
        if gpu is None:
            continue
        m = _REASON.match(line)
        if inside and m:
            found[gpu][m.group(1).strip()] = m.group(2) == "Active"
        elif inside and line.strip() and not m:
            inside = False
    if not found:
        raise ParseError("no GPU section in the nvidia-smi -q -d PERFORMANCE output")
    return found


_BENCH = re.compile(r"^AICP-BENCH (.*)$", re.M)


def bench(text: str) -> dict[int, dict[str, str]]:
    """gpu index -> key -> value, from ``AICP-BENCH gpu=<i> key=value ...`` lines."""
    out: dict[int, dict[str, str]] = {}
    for line in _BENCH.findall(text):
        fields = dict(word.split("=", 1) for word in shlex.split(line) if "=" in word)
        if "gpu" in fields and fields["gpu"].isdigit():
            out.setdefault(int(fields.pop("gpu")), {}).update(fields)
    return out


def section(text: str, name: str) -> str:
    """The lines between ``=== AICP <name> ===`` and the next marker (the pods' scripts
    print one before each tool so one log holds several outputs)."""
    m = re.search(rf"^=== AICP {re.escape(name)} ===\s*$(.*?)(?=^=== AICP |\Z)", text,
                  re.M | re.S)
    return m.group(1) if m else ""
