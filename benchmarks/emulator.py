"""The test emulator at scale: one page of 500 pods out of 100,000 on 5,000 nodes.

The probe benchmarks lean on it, so its own cost must stay well under a second a page.
"""

from __future__ import annotations

import time

from kubernetes import client

from benchmarks.clusters import sized
from benchmarks.common import table


def main(nodes: int = 5_000, pods_per_node: int = 20, pages: int = 5) -> str:
    start = time.perf_counter()
    kube = sized(nodes, pods_per_node)
    seeded = time.perf_counter() - start
    kube.start()
    try:
        with kube.client() as api:
            core = client.CoreV1Api(api)
            core.list_node(limit=1)  # the client builds its models on first use
            timings, token = [], None
            for _ in range(pages):
                start = time.perf_counter()
                page = core.list_pod_for_all_namespaces(limit=500, _continue=token)
                timings.append(time.perf_counter() - start)
                token = page.metadata._continue
    finally:
        kube.stop()
    return table(f"emulator: {nodes} nodes, {nodes * pods_per_node} pods",
                 ["measure", "seconds"],
                 [["seed the cluster", f"{seeded:.2f}"],
                  [f"typed page of 500 pods (mean of {pages})",
                   f"{sum(timings) / len(timings):.3f}"],
                  ["slowest page", f"{max(timings):.3f}"]])


if __name__ == "__main__":
    print(main())
