"""Builders for complete objects (the v37 client's pydantic models reject partial ones)."""

from __future__ import annotations

import hashlib
from typing import Any

from .store import now

H100 = "NVIDIA-H100-80GB-HBM3"


def _uuid(seed: str) -> str:
    h = hashlib.sha1(seed.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def namespace(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name,
                                                  **(labels or {})}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def node(name: str, *, cpu: str = "16", memory: str = "64Gi", pods: str = "110",
         extended: dict[str, str] | None = None, labels: dict | None = None,
         taints: list[dict] | None = None, minor: str = "1.35", ip: str = "10.0.0.1") -> dict:
    capacity = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi",
                **(extended or {})}
    conditions = [{"type": t, "status": "False", "reason": f"KubeletHas{r}",
                   "message": m, "lastHeartbeatTime": now(), "lastTransitionTime": now()}
                  for t, r, m in (("MemoryPressure", "SufficientMemory", "sufficient memory"),
                                  ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                                  ("PIDPressure", "SufficientPID", "sufficient PID"))]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status",
                       "lastHeartbeatTime": now(), "lastTransitionTime": now()})
    spec: dict[str, Any] = {"providerID": f"aws:///us-west-2a/i-{_uuid(name)[:17]}"}
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": "us-west-2a",
            **(labels or {})}},
        "spec": spec,
        "status": {
            "capacity": capacity, "allocatable": dict(capacity), "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"architecture": "amd64", "bootID": _uuid(name + "boot"),
                         "containerRuntimeVersion": "containerd://2.1.0",
                         "kernelVersion": "6.8.0", "kubeProxyVersion": f"v{minor}.0",
                         "kubeletVersion": f"v{minor}.0", "machineID": _uuid(name)[:32],
                         "operatingSystem": "linux", "osImage": "Ubuntu 24.04 LTS",
                         "systemUUID": _uuid(name + "system")},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def gpu_node(name: str, *, gpus: int = 8, product: str = H100,
             instance_type: str = "p5.48xlarge", accelerator: str = "h100",
             pool: str = "h100", taint: bool = True, device_plugin: bool = True,
             minor: str = "1.35", ip: str = "10.0.1.1") -> dict:
    labels = {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": product,
              "nvidia.com/gpu.count": str(gpus),
              "node.kubernetes.io/instance-type": instance_type,
              "aicp.dev/accelerator": accelerator, "aicp.dev/gpu-pool": pool}
    return node(name, cpu="192", memory="2048Gi", labels=labels, minor=minor, ip=ip,
                extended={"nvidia.com/gpu": str(gpus)} if device_plugin else None,
                taints=[dict(GPU_TAINT)] if taint else None)


def device_class(name: str = "gpu.nvidia.com", driver: str = "gpu.nvidia.com") -> dict:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
            "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": f'device.driver == "{driver}"'}}]}}


def resource_slice(node_name: str, *, gpus: int = 8, driver: str = "gpu.nvidia.com",
                   product: str = "NVIDIA H100 80GB HBM3", memory: str = "80Gi",
                   driver_version: str = "580.65.06") -> dict:
    devices = [{"name": f"gpu-{i}", "attributes": {
        "type": {"string": "gpu"}, "productName": {"string": product},
        "uuid": {"string": "GPU-" + _uuid(f"{node_name}-{i}")},
        "driverVersion": {"version": driver_version.rsplit(".", 1)[0] + ".0"},
        "index": {"int": i}, "architecture": {"string": "Hopper"}},
        "capacity": {"memory": {"value": memory}}} for i in range(gpus)]
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": f"{node_name}-{driver}"},
            "spec": {"driver": driver, "nodeName": node_name,
                     "pool": {"name": node_name, "generation": 1, "resourceSliceCount": 1},
                     "devices": devices}}


def dranet_slice(node_name: str, nics: int = 2) -> dict:
    """DRANET publishes each RDMA NIC of a node as a device with ``dra.net/*`` attributes."""
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": f"{node_name}-dra.net"},
            "spec": {"driver": "dra.net", "nodeName": node_name,
                     "pool": {"name": node_name, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": f"eth{i}", "attributes": {
                         "dra.net/ifName": {"string": f"eth{i}"},
                         "dra.net/rdma": {"bool": True},
                         "dra.net/pciVendor": {"string": "Mellanox Technologies"}}}
                         for i in range(1, nics + 1)]}}


def crd(group: str, version: str, kind: str, plural: str, *, namespaced: bool = True,
        status: bool = True, spec_schema: dict | None = None) -> dict:
    """An Established CRD of one served version. Its schema keeps unknown fields (enough
    for discovery and CRUD); ``spec_schema`` makes ``spec`` stricter where a probe relies
    on the API server refusing an object."""
    schema: dict = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if spec_schema is not None:
        schema = {"type": "object", "properties": {
            "spec": spec_schema,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced" if namespaced else "Cluster",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": f"{kind}List"},
                     "versions": [{"name": version, "served": True, "storage": True,
                                   **({"subresources": {"status": {}}} if status else {}),
                                   "schema": {"openAPIV3Schema": schema}}]},
            "status": {"conditions": [{"type": "Established", "status": "True",
                                       "reason": "InitialNamesAccepted", "message": "",
                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                       "acceptedNames": {"kind": kind, "plural": plural}}}


def runtime_class(name: str, handler: str, scheduling: dict | None = None) -> dict:
    rc = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
          "metadata": {"name": name}, "handler": handler}
    if scheduling:
        rc["scheduling"] = scheduling
    return rc


def _template(name: str, image: str, labels: dict, node_selector: dict | None,
              tolerations: list | None) -> dict:
    spec: dict[str, Any] = {"containers": [{"name": name, "image": image}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": {"labels": labels}, "spec": spec}


def ready_deployment(name: str, namespace: str, image: str, replicas: int = 1,
                     labels: dict | None = None) -> dict:
    labels = labels or {"app.kubernetes.io/name": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                         "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": _template(name, image, labels, None, None)},
            "status": {"observedGeneration": 1, "replicas": replicas,
                       "readyReplicas": replicas, "availableReplicas": replicas,
                       "updatedReplicas": replicas, "conditions": [
                           {"type": "Available", "status": "True",
                            "reason": "MinimumReplicasAvailable",
                            "message": "Deployment has minimum availability.",
                            "lastUpdateTime": now(), "lastTransitionTime": now()}]}}


def ready_daemonset(name: str, namespace: str, image: str, nodes: int,
                    node_selector: dict | None = None, tolerations: list | None = None,
                    labels: dict | None = None) -> dict:
    labels = labels or {"app.kubernetes.io/name": name}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                         "generation": 1},
            "spec": {"selector": {"matchLabels": labels},
                     "template": _template(name, image, labels, node_selector, tolerations)},
            "status": {"observedGeneration": 1, "currentNumberScheduled": nodes,
                       "desiredNumberScheduled": nodes, "numberAvailable": nodes,
                       "numberMisscheduled": 0, "numberReady": nodes,
                       "updatedNumberScheduled": nodes}}


def service(name: str, namespace: str, port: int, selector: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "ClusterIP", "selector": selector or {"app.kubernetes.io/name": name},
                     "ports": [{"name": "http", "port": port, "targetPort": port,
                                "protocol": "TCP"}]},
            "status": {"loadBalancer": {}}}


def pod(name: str, namespace: str = "default", *, image: str = "busybox:1.36",
        command: list[str] | None = None, requests: dict | None = None,
        limits: dict | None = None, labels: dict | None = None,
        node_selector: dict | None = None, tolerations: list | None = None,
        restart_policy: str = "Never", claims: dict[str, str] | None = None) -> dict:
    """A pod spec as a probe would submit it; ``claims`` maps claim name to template."""
    container: dict[str, Any] = {"name": "main", "image": image}
    if command:
        container["command"] = command
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    if claims:
        resources["claims"] = [{"name": c} for c in claims]
    if resources:
        container["resources"] = resources
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart_policy}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if claims:
        spec["resourceClaims"] = [{"name": c, "resourceClaimTemplateName": t}
                                  for c, t in claims.items()]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": spec}


def gpu_claim_template(name: str, namespace: str, count: int = 1,
                       device_class_name: str = "gpu.nvidia.com") -> dict:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                "deviceClassName": device_class_name, "allocationMode": "ExactCount",
                "count": count}}]}}}}
