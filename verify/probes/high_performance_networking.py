"""high_performance_networking: specialised network resources are managed and discoverable.

Read-only. Its cases, in order, each looking for one mechanism, DRA first (the
requirement's preferred mechanism):

1. ``_network_devices_are_published_through_dra``: ResourceSlices published by a network
   DRA driver (DRANET ``dra.net``, or any driver whose devices' attributes say RDMA/NIC);
2. ``_pods_can_attach_extra_interfaces``: Multus ``k8s.cni.cncf.io/v1``
   NetworkAttachmentDefinitions;
3. ``_nodes_advertise_rdma_or_efa_resources``: ``rdma/*`` extended resources in node
   allocatable (RDMA shared device plugin), ``vpc.amazonaws.com/efa`` (the EKS EFA
   device plugin advertises EFA devices as that extended resource:
   docs.aws.amazon.com/eks/latest/userguide/device-management-efa.html, "Integer count of
   vpc.amazonaws.com/efa extended resources"), and the resources an NVIDIA Network Operator
   ``NicClusterPolicy``/``NicNodePolicy`` declares for its device plugins (SR-IOV resources
   such as ``nvidia.com/hostdev``: ``resourcePrefix`` + ``resourceName`` of each
   ``resourceList`` entry; the k8snetworkplumbingwg sriov-network-device-plugin README gives
   ``intel.com`` as the prefix when none is set; the RDMA shared device plugin's
   ``configList`` names under ``rdma/``, Mellanox/k8s-rdma-shared-dev-plugin README). Any
   other ``nvidia.com/*`` resource is a GPU's (``nvidia.com/gpu``, MIG, renamed time-slices)
   and never counts;
4. ``_gke_device_networks_are_ready``: GKE multi-networking ``networking.gke.io/v1``
   Networks of ``type: Device`` (the GPU NICs of GPUDirect-TCPX/TCPXO/RDMA node pools)
   whose ``Ready`` condition is True (kubernetes/cloud-provider-gcp
   crd/apis/network/v1/network_types.go: ``NetworkConditionStatusReady`` "Ready",
   ``ParamsReady`` from the GKENetworkParamSet controller). L3 pod networks are additional
   interfaces, not devices, and are only recorded;
5. ``_stack_fabric_pools_publish_their_devices`` (with ``--stack``): every GPU pool the stack
   built with a fabric (``gpuPools[].fabric``, aicp's components/fabric.py) publishes on each
   of its nodes what the pool says a pod asks for (``resources``; ``claims``: that many
   devices in the node's ResourceSlices of a network driver, the DeviceClass served; GKE
   ``networks``). A fabric
   pool whose nodes publish none of it is FAIL, whatever else the cluster offers: pods of
   that pool (the NCCL proof's among them) could not get their fabric. A pool with no node
   yet (scaled to zero) is recorded, not judged.

NVIDIA's ComputeDomain driver (``compute-domain.nvidia.com``) and its DeviceClasses are
recorded but are not evidence: its kubelet plugin publishes devices on every GPU node with
the chart's default values, NVLink or not (kubernetes-sigs/dra-driver-nvidia-gpu#438: a
single RTX 3090 lists ``compute-domain-daemon.nvidia.com`` and
``compute-domain-default-channel.nvidia.com``), so its presence says nothing about a
high-performance network.

PASS when at least one mechanism exposes devices (the observed ones are the evidence).
Nothing found is FAIL with a reason starting "not implemented": the checklist writes a FAIL
as "Not Implemented" (verify/reports/checklist.py), and a SHOULD never changes the exit code.
The requirement begins "If high performance pod-to-pod communication is needed": a platform
that needs none may change that status to N/A by hand, with its own note.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from ..probe import Context, Fail, Probe

DRA = "resource.k8s.io/v1"
NETWORK_DRIVERS = ("dra.net",)
COMPUTE_DOMAIN = "compute-domain.nvidia.com"
NETWORK_RESOURCES = ("rdma/", "vpc.amazonaws.com/efa")
NETWORK_OPERATOR = "mellanox.com/v1alpha1"
GKE_NETWORKING = "networking.gke.io/v1"
# The sriov-network-device-plugin's prefix when a resourceList entry names none
# (k8snetworkplumbingwg/sriov-network-device-plugin README, "resourcePrefix").
SRIOV_DEFAULT_PREFIX = "intel.com"
RDMA_SHARED_PREFIX = "rdma"
_NETWORK_HINTS = ("rdma", "nic", "net", "ib", "roce")


class HighPerformanceNetworking(Probe):
    id = "high_performance_networking"
    category = "networking"
    mutating = False
    title = "Specialised network resources are discoverable (DRA, Multus, RDMA)"

    def cases(self, ctx: Context) -> str:
        dra, compute_domain = _network_devices_are_published_through_dra(ctx)
        gke = _gke_device_networks_are_ready(ctx)
        found = [f for f in (dra, _pods_can_attach_extra_interfaces(ctx),
                             _nodes_advertise_rdma_or_efa_resources(ctx), gke) if f]
        _stack_fabric_pools_publish_their_devices(ctx)
        if found:
            return "specialised network resources are discoverable: " + "; ".join(found)
        domain = (" (ComputeDomain devices and DeviceClasses alone do not count: the NVIDIA "
                  "DRA driver installs and publishes them on every GPU node, NVLink or not)"
                  ) if compute_domain else ""
        raise Fail("not implemented: no network DRA driver ResourceSlices "
                   f"({', '.join(NETWORK_DRIVERS)} or RDMA/NIC devices), no Multus "
                   "NetworkAttachmentDefinitions, no rdma/*, vpc.amazonaws.com/efa or "
                   "Network Operator node resources and no Ready GKE Device networks"
                   f"{domain}; the requirement applies only where high "
                   "performance pod-to-pod communication is needed")


def _network_devices_are_published_through_dra(ctx: Context) -> tuple[str | None, bool]:
    """The evidence ("DRA dra.net: 2 devices") or None, and whether ComputeDomain devices
    or DeviceClasses exist (recorded, never counted: module doc)."""
    with ctx.step("DRA network devices"):
        served = ctx.kube.resources(DRA)
        slices = _items(ctx, f"/apis/{DRA}/resourceslices") if served else []
        by_driver: dict[str, int] = {}
        compute_domain = 0
        for s in slices:
            spec = s.get("spec") or {}
            driver = spec.get("driver", "")
            if driver == COMPUTE_DOMAIN:
                compute_domain += len(spec.get("devices") or [])
            elif driver in NETWORK_DRIVERS or _network_devices(spec.get("devices") or []):
                by_driver[driver] = by_driver.get(driver, 0) + len(spec.get("devices") or [])
        domain_classes = [c["metadata"]["name"] for c in (
            _items(ctx, f"/apis/{DRA}/deviceclasses") if served else [])
            if c["metadata"]["name"].startswith("compute-domain")
            and c["metadata"]["name"].endswith(".nvidia.com")]
        if domain_classes:
            ctx.observe("computeDomainDeviceClasses (not counted)", domain_classes)
        observed = ", ".join(f"{d}: {n} devices" for d, n in sorted(by_driver.items()))
        ctx.observe("network DRA drivers", by_driver)
        if compute_domain:
            ctx.observe("computeDomainDevices (not counted: published on every GPU node, "
                        "NVLink or not; dra-driver-nvidia-gpu#438)", compute_domain)
        if by_driver:
            ctx.check("network devices are published through DRA", True, observed)
    return ("DRA " + observed if by_driver else None), bool(compute_domain or domain_classes)


def _pods_can_attach_extra_interfaces(ctx: Context) -> str | None:
    """Multus NetworkAttachmentDefinitions, as evidence, or None."""
    with ctx.step("Multus NetworkAttachmentDefinitions"):
        if not ctx.kube.resources("k8s.cni.cncf.io/v1"):
            return None
        nads = _items(ctx, "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions")
        names = [f"{n['metadata'].get('namespace')}/{n['metadata']['name']}" for n in nads]
        ctx.observe("NetworkAttachmentDefinitions", names)
        if not names:
            return None
        ctx.check("pods can attach extra interfaces (Multus)", True, ", ".join(names[:5]))
    return f"Multus ({len(names)} NetworkAttachmentDefinitions)"


def _nodes_advertise_rdma_or_efa_resources(ctx: Context) -> str | None:
    """``rdma/*``, EFA and Network Operator extended resources in node allocatable, as
    evidence, or None."""
    with ctx.step("RDMA and EFA extended resources"):
        declared = _network_operator_resources(ctx)
        if declared:
            ctx.observe("Network Operator device plugin resources", sorted(declared))
        rdma: dict[str, list[str]] = {}
        for node in _items(ctx, "/api/v1/nodes"):
            for res, qty in ((node.get("status") or {}).get("allocatable") or {}).items():
                if (res.startswith(NETWORK_RESOURCES) or res in declared) \
                        and str(qty) not in ("0", ""):
                    rdma.setdefault(res, []).append(node["metadata"]["name"])
        ctx.observe("rdma resources", rdma)
        if not rdma:
            return None
        ctx.check("nodes advertise RDMA resources", True,
                  "; ".join(f"{r} on {len(n)} nodes" for r, n in sorted(rdma.items())))
    return "network device plugin " + ", ".join(sorted(rdma))


def _network_operator_resources(ctx: Context) -> set[str]:
    """The extended resources the Network Operator's policies declare for their device
    plugins (SR-IOV ``resourceList``, RDMA shared ``configList``)."""
    if not ctx.kube.resources(NETWORK_OPERATOR):
        return set()
    names: set[str] = set()
    for plural in ("nicclusterpolicies", "nicnodepolicies"):
        for policy in _items(ctx, f"/apis/{NETWORK_OPERATOR}/{plural}"):
            spec = policy.get("spec") or {}
            for key, entries, prefix in (("sriovDevicePlugin", "resourceList",
                                          SRIOV_DEFAULT_PREFIX),
                                         ("rdmaSharedDevicePlugin", "configList",
                                          RDMA_SHARED_PREFIX)):
                for entry in _config(spec.get(key)).get(entries) or []:
                    if isinstance(entry, dict) and entry.get("resourceName"):
                        names.add(f"{entry.get('resourcePrefix') or prefix}/"
                                  f"{entry['resourceName']}")
    return names


def _config(plugin: object) -> dict:
    """A device plugin's ``config`` (a JSON string in the policy), or {} when unreadable."""
    text = plugin.get("config") if isinstance(plugin, dict) else None
    try:
        config = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def _gke_device_networks_are_ready(ctx: Context) -> str | None:
    """GKE ``Device`` Networks whose Ready condition is True, as evidence, or None."""
    with ctx.step("GKE multi-networking Device networks"):
        if not ctx.kube.resources(GKE_NETWORKING):
            return None
        ready, not_ready, other = [], [], []
        for network in _items(ctx, f"/apis/{GKE_NETWORKING}/networks"):
            name = network["metadata"]["name"]
            if (network.get("spec") or {}).get("type") != "Device":
                other.append(name)
                continue
            conditions = (network.get("status") or {}).get("conditions") or []
            is_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                           for c in conditions)
            (ready if is_ready else not_ready).append(name)
        ctx.observe("GKE Device networks Ready", ready)
        if not_ready:
            ctx.observe("GKE Device networks not Ready", not_ready)
        if other:
            ctx.observe("GKE other networks (not counted)", other)
        if not ready:
            return None
        ctx.check("GKE Device networks are Ready", True, ", ".join(ready[:8]))
    return f"GKE multi-networking ({len(ready)} Ready Device networks)"


def _stack_fabric_pools_publish_their_devices(ctx: Context) -> None:
    """Each fabric pool of the stack publishes its devices on its nodes; Fail where not."""
    pools = [p for p in ctx.settings.expectations.get("gpuPools") or []
             if isinstance(p, dict) and isinstance(p.get("fabric"), dict)]
    if not pools:
        return
    with ctx.step("the stack's fabric pools publish their devices"):
        nodes = _items(ctx, "/api/v1/nodes")
        claims = any(p["fabric"].get("claims") for p in pools)
        served = claims and bool(ctx.kube.resources(DRA))
        slices = _items(ctx, f"/apis/{DRA}/resourceslices") if served else []
        classes = {c["metadata"]["name"] for c in (
            _items(ctx, f"/apis/{DRA}/deviceclasses") if served else [])}
        ready = set()
        if any(p["fabric"].get("networks") for p in pools) and ctx.kube.resources(GKE_NETWORKING):
            ready = {n["metadata"]["name"] for n in _items(ctx, f"/apis/{GKE_NETWORKING}/networks")
                     if any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in (n.get("status") or {}).get("conditions") or [])}
        missing: list[str] = []
        for pool in pools:
            name, fabric = str(pool.get("name")), pool["fabric"]
            members = [n for n in nodes
                       if ((n.get("metadata") or {}).get("labels") or {}).get(
                           "aicp.dev/gpu-pool") == name]
            if not members:
                ctx.observe(f"fabric pool {name}", "no node yet (scaled to zero): not judged")
                continue
            lacking = []
            for res, count in (fabric.get("resources") or {}).items():
                short = [n["metadata"]["name"] for n in members
                         if _quantity(((n.get("status") or {}).get("allocatable") or {})
                                      .get(res)) < int(count)]
                if short:
                    lacking.append(f"{res} >= {count} on {', '.join(short)}")
            claim = fabric.get("claims") or {}
            if claim:
                if claim.get("deviceClassName") not in classes:
                    lacking.append(f"DeviceClass {claim.get('deviceClassName')}")
                short = [n["metadata"]["name"] for n in members
                         if _network_devices_on(slices, n["metadata"]["name"])
                         < int(claim.get("count") or 1)]
                if short:
                    lacking.append(f"{claim.get('count')} network DRA devices on "
                                   f"{', '.join(short)}")
            absent = [n for n in fabric.get("networks") or [] if n not in ready]
            if absent:
                lacking.append(f"Ready Device networks {', '.join(absent)}")
            ctx.check(f"fabric pool {name} publishes {fabric.get('kind')}", not lacking,
                      "; ".join(lacking) or f"{len(members)} nodes publish it")
            if lacking:
                missing.append(f"{name} ({'; '.join(lacking)})")
    if missing:
        raise Fail(f"the stack's fabric pools do not publish their devices: "
                   f"{'; '.join(missing)}; pods of these pools cannot get their fabric (is "
                   "the pool's device plugin, Network Operator or GKE network ready?)",
                   partial=True)


def _network_devices_on(slices: list[dict], node: str) -> int:
    """Devices a network DRA driver publishes for ``node``."""
    count = 0
    for s in slices:
        spec = s.get("spec") or {}
        devices = spec.get("devices") or []
        if spec.get("nodeName") == node and (spec.get("driver") in NETWORK_DRIVERS
                                             or _network_devices(devices)):
            count += len(devices)
    return count


def _quantity(value: object) -> int:
    """An extended resource's count (a plain integer quantity), 0 when absent."""
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


def _items(ctx: Context, path: str) -> list[dict]:
    try:
        return list(ctx.kube.items(path))
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise


def _network_devices(devices: list[dict]) -> bool:
    """Devices whose attribute names or type say they are NICs/RDMA (DRANET's ``dra.net/*``
    attributes: ``rdma``, ``ifName``, ``pciVendor``...)."""
    for device in devices:
        attrs = device.get("attributes") or {}
        keys = " ".join(attrs).lower()
        kind = str(((attrs.get("type") or {}).get("string")) or "").lower()
        if "rdma" in keys or "ifname" in keys or kind in _NETWORK_HINTS:
            return True
    return False
