"""Scale (100k pods) and the standalone entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kubernetes import client, config

from tests.shared import REPO

from .objects import node


def test_100k_pods_on_5k_nodes_are_served_page_by_page(kubeapi):
    # How fast a page comes back is measured in benchmarks/emulator.py, not asserted here.
    template = {"apiVersion": "v1", "kind": "Pod", "spec": {
        "containers": [{"name": "c", "image": "busybox"}], "nodeName": "n"},
        "status": {"phase": "Running"}}
    kubeapi.seed(node(f"node-{i:04d}") for i in range(5_000))
    kubeapi.seed([{**template, "metadata": {"name": f"pod-{i:06d}", "namespace": "default",
                                            "labels": {"i": str(i % 10)}}}
                  for i in range(100_000)])
    with kubeapi.client() as api:
        core = client.CoreV1Api(api)
        first = core.list_pod_for_all_namespaces(limit=500, _preload_content=False)
        page = core.list_namespaced_pod("default", limit=500, _continue=None)
        page = core.list_namespaced_pod("default", limit=500, _continue=page.metadata._continue)
        assert first.status == 200
        assert page.items[0].metadata.name == "pod-000500"
        assert page.metadata.remaining_item_count == 99_000
        assert len(core.list_node(limit=500).items) == 500


def test_serve_entry_point_writes_a_kubeconfig_the_client_can_use(tmp_path: Path):
    kubeconfig = tmp_path / "kc.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "tests.kubeapi", "serve", "--scenario",
                             "empty", "--kubeconfig", str(kubeconfig)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # It prints "serving ..." once the kubeconfig is in place: read, never poll a clock.
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line.decode())
            if seen[-1].startswith("serving "):
                break
        assert seen and seen[-1].startswith("serving ") and kubeconfig.exists(), "".join(seen)
        api = config.new_client_from_config(config_file=str(kubeconfig))
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        assert "kube-system" in names
        assert client.CoreV1Api(api).list_node().items == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)
