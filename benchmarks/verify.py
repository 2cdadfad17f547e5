"""``aicp verify`` against emulated clusters of growing size: wall time, API requests, bytes
received and peak memory of the verify process.

Growth must be at most linear in cluster size, and requests may grow with node count only
through pagination (targets: 5,000 nodes read-only in under 10 s and under 200 requests).
The emulator runs in this process; ``aicp verify`` runs as a child so its memory is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.clusters import sized
from benchmarks.common import AICP, table
from tests.shared import CONFORMANCE

SIZES = (10, 1_000, 5_000)


def run_verify(nodes: int, pods_per_node: int, *, read_only: bool, workdir: Path,
               extra: tuple[str, ...] = ()) -> dict:
    kube = sized(nodes, pods_per_node)
    kube.start()
    try:
        kube.settle(timeout=300)  # operators' pods exist before the run, as on a real cluster
        kubeconfig = workdir / f"kc-{nodes}.yaml"
        kube.write_kubeconfig(kubeconfig)
        kube.requests.clear()
        template = CONFORMANCE / "AIConformance-1.35.yaml"
        argv = ["/usr/bin/time", "-f", "%M", AICP, "verify", "--kubeconfig", str(kubeconfig),
                "--checklist-template", str(template), "--output", "json",
                "--output-dir", str(workdir / f"out-{nodes}-{read_only}"), *extra]
        if read_only:
            argv.append("--read-only")
        start = time.perf_counter()
        run = subprocess.run(argv, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        # 3: --read-only left MUSTs out (not a conformance result), a normal outcome here.
        if run.returncode not in (0, 1, 3):
            raise RuntimeError(f"aicp verify exited {run.returncode}:\n{run.stdout[-3000:]}"
                               f"\n{run.stderr[-3000:]}")
        peak_kib = int(run.stderr.strip().splitlines()[-1])
        log = kube.requests.matching()
        results = json.loads((workdir / f"out-{nodes}-{read_only}" / "results" /
                              "aicp-results.json").read_text())
    finally:
        kube.stop()
    verdicts = {r["id"]: r["verdict"] for r in results.get("requirements", [])}
    return {"nodes": nodes, "pods": nodes * pods_per_node, "seconds": seconds,
            "requests": len(log), **kinds(log), "bytes": sum(r.bytes_sent for r in log),
            "peak_mib": peak_kib / 1024, "verdicts": verdicts}


def kinds(log) -> dict[str, int]:
    """Requests split three ways: later pages of a list (``continue``), repeats of a request
    already made (a probe polling for something to happen, or a second probe reading the
    same list), and the rest, which must not grow with the cluster."""
    seen: set = set()
    pages = repeats = 0
    for r in log:
        if r.query.get("continue"):
            pages += 1
            continue
        key = (r.method, r.path, tuple(sorted(r.query.items())))
        repeats += key in seen
        seen.add(key)
    return {"pages": pages, "repeats": repeats, "others": len(log) - pages - repeats}


def main(sizes: tuple[int, ...] = SIZES, pods_per_node: int = 20,
         modes: tuple[bool, ...] = (True, False)) -> str:
    if not CONFORMANCE.exists():
        return f"aicp verify: skipped, no checklist templates at {CONFORMANCE}\n"
    rows, growth = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for read_only in modes:
            runs = []
            for nodes in sizes:
                r = run_verify(nodes, pods_per_node, read_only=read_only, workdir=Path(tmp))
                runs.append(r)
                rows.append([
                    "read-only" if read_only else "all probes", r["nodes"], r["pods"],
                    f"{r['seconds']:.2f}", r["requests"], r["pages"], r["repeats"],
                    r["others"], f"{r['bytes'] / 1e6:.1f}", f"{r['peak_mib']:.0f}",
                    sum(v == "PASS" for v in r["verdicts"].values())])
            if len(runs) > 1:
                growth.append(grown("read-only" if read_only else "all probes", *runs[-2:]))
    return table(f"aicp verify on emulated clusters ({pods_per_node} pods per node)",
                 ["probes", "nodes", "pods", "wall s", "requests", "pages", "repeats",
                  "others", "MB received", "peak MiB", "PASS"], rows) + "".join(growth)


def grown(mode: str, small: dict, large: dict) -> str:
    """How much each figure grew between the two largest sizes, next to the size's growth
    (at most linear: no ratio above the size's)."""
    ratio = lambda key: large[key] / small[key] if small[key] else float("nan")  # noqa: E731
    return (f"{mode}, {small['nodes']:,} -> {large['nodes']:,} nodes (x{ratio('nodes'):.0f}): "
            f"wall x{ratio('seconds'):.1f}, MB x{ratio('bytes'):.1f}, "
            f"peak MiB x{ratio('peak_mib'):.1f}, others x{ratio('others'):.1f}\n")


if __name__ == "__main__":
    print(main(tuple(int(a) for a in sys.argv[1:]) or SIZES))
