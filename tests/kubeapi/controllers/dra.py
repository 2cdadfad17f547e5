"""A DRA allocator: claims from templates for pods, and allocations from ResourceSlices.

For each pod claim naming a ResourceClaimTemplate it creates ``<pod>-<claim>-<5 chars>``
(owned by the pod) and records it in ``status.resourceClaimStatuses``. Unallocated
claims get devices from published ``resource.k8s.io/v1`` ResourceSlices, all requests of
one claim on one node, reserved for the pods that use them.

CEL is not evaluated. Supported selector expressions, joined with ``&&``:
``device.driver == "x"`` and ``device.attributes["domain"].name == "x"`` (or a number or
bool), with either quote (the NVIDIA chart's classes use single quotes:
../shared/fixtures/nvidia-dra-deviceclasses.yaml). Results of ``adminAccess`` requests
do not take the device: others may still be allocated it (KEP-5018). Anything else
makes the claim unallocatable and is recorded in the controller
errors, so a test notices instead of passing on a guess.
"""

from __future__ import annotations

import re

from ..store import random_suffix
from .base import Controller

_DRIVER = re.compile(r"""^device\.driver\s*==\s*(['"])([^'"]*)\1$""")
_ATTR = re.compile(r"""^device\.attributes\[(['"])([^'"]+)\1\]\.(\w+)\s*==\s*(.+)$""")


class UnsupportedExpression(ValueError):
    pass


def _uses_claims(pod: dict) -> bool:
    """The pods this allocator reads (``KubeAPI.view``'s ``where``): those with claims."""
    return bool(pod["spec"].get("resourceClaims") or (pod.get("status") or {}).get(
        "resourceClaimStatuses"))


def _literal(text: str):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return int(text) if text.lstrip("-").isdigit() else float(text)


def cel_matches(expression: str, driver: str, device: dict) -> bool:
    for clause in (c.strip() for c in expression.split("&&")):
        m = _DRIVER.match(clause)
        if m:
            if driver != m.group(2):
                return False
            continue
        m = _ATTR.match(clause)
        if not m:
            raise UnsupportedExpression(f"CEL expression not emulated: {clause!r}")
        domain, name, want = m.group(2), m.group(3), _literal(m.group(4))
        attrs = device.get("attributes") or {}
        attr = attrs.get(name) if domain == driver else attrs.get(f"{domain}/{name}")
        value = next(iter((attr or {}).values()), None)
        if value != want:
            return False
    return True


def _selectors_match(selectors: list[dict], driver: str, device: dict) -> bool:
    return all(cel_matches(s["cel"]["expression"], driver, device)
               for s in selectors or [] if "cel" in s)


def _all_devices(slices: list[dict], cls: dict, exactly: dict, in_use: set, taken: set,
                 admin: bool) -> list[tuple]:
    """``allocationMode: All`` on one node: every device of the node's slices that the
    class and the request select, each of which must be free; none selected, or one of them
    in use by another claim (unless the request is adminAccess), leaves the node no
    solution, so the claim stays unallocated (kubernetes/kubernetes staging/src/k8s.io/
    dynamic-resource-allocation/structured/internal/stable/allocator_stable.go:
    ``validateDeviceRequest`` collects ``allDevices`` from every pool targeting the node,
    ``allocateOne`` returns no solution when ``allDevices`` is empty ("At least one
    device is required for 'All' allocation mode") or when ``allocateDevice`` finds one of
    them in use ("If we couldn't get all of them, then there is no solution")."""
    wanted = [(s["spec"]["driver"], s["spec"]["pool"]["name"], d["name"])
              for s in slices for d in s["spec"].get("devices") or []
              if _selectors_match(cls["spec"].get("selectors"), s["spec"]["driver"], d)
              and _selectors_match(exactly.get("selectors"), s["spec"]["driver"], d)]
    if any(key in taken or (key in in_use and not admin) for key in wanted):
        return []
    return wanted


class DraAllocator(Controller):
    name = "dra-allocator"
    watches = ("pods", "resourceclaims.resource.k8s.io", "resourceslices.resource.k8s.io")

    def sync(self, kube) -> None:
        pods = kube.view("pods", where=_uses_claims)
        for pod in pods:
            if pod["spec"].get("resourceClaims") and not pod["metadata"].get("deletionTimestamp"):
                self._claims_for(kube, pod)
        claims = kube.list("resourceclaims.resource.k8s.io")
        in_use = {(r["driver"], r["pool"], r["device"]) for c in claims
                  for r in (((c.get("status") or {}).get("allocation") or {}).get("devices")
                            or {}).get("results") or [] if not r.get("adminAccess")}
        slices = kube.list("resourceslices.resource.k8s.io")
        for claim in claims:
            if not (claim.get("status") or {}).get("allocation"):
                self._allocate(kube, claim, slices, in_use)
        self._reserve(kube, pods)

    def _claims_for(self, kube, pod: dict) -> None:
        meta = pod["metadata"]
        ns = meta["namespace"]
        statuses = {s["name"]: s for s in (pod.get("status") or {}).get(
            "resourceClaimStatuses") or []}
        added = []
        for ref in pod["spec"]["resourceClaims"]:
            template_name = ref.get("resourceClaimTemplateName")
            if not template_name or ref["name"] in statuses:
                continue
            template = kube.find("resourceclaimtemplates.resource.k8s.io", template_name, ns)
            if template is None:
                continue
            claim = kube.create({
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                "metadata": {"name": f"{meta['name']}-{ref['name']}-{random_suffix()}",
                             "namespace": ns,
                             "annotations": {"resource.kubernetes.io/pod-claim-name":
                                             ref["name"]},
                             "ownerReferences": [{
                                 "apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}]},
                "spec": template["spec"]["spec"]})
            added.append({"name": ref["name"], "resourceClaimName": claim["metadata"]["name"]})
        if added:
            kube.mutate("pods", meta["name"], lambda p: p["status"].setdefault(
                "resourceClaimStatuses", []).extend(added), ns, status=True)

    def _allocate(self, kube, claim: dict, slices: list[dict], in_use: set) -> None:
        requests = ((claim["spec"].get("devices") or {}).get("requests")) or []
        by_node: dict[str, list[dict]] = {}
        for s in slices:
            by_node.setdefault(s["spec"].get("nodeName", ""), []).append(s)
        for node in sorted(by_node):
            taken: set = set()
            results = []
            for request in requests:
                exactly = request.get("exactly") or {}
                cls = kube.find("deviceclasses.resource.k8s.io",
                                exactly.get("deviceClassName", ""))
                if cls is None:
                    return
                want = exactly.get("count", 1) if exactly.get(
                    "allocationMode", "ExactCount") == "ExactCount" else None
                admin = bool(exactly.get("adminAccess"))
                picked = []
                if want is None:
                    picked = _all_devices(by_node[node], cls, exactly, in_use, taken, admin)
                    taken.update(picked)
                for s in by_node[node] if want is not None else ():
                    driver, pool = s["spec"]["driver"], s["spec"]["pool"]["name"]
                    for device in s["spec"].get("devices") or []:
                        key = (driver, pool, device["name"])
                        if (key in in_use and not admin) or key in taken:
                            continue
                        if _selectors_match(cls["spec"].get("selectors"), driver, device) \
                                and _selectors_match(exactly.get("selectors"), driver, device):
                            picked.append(key)
                            taken.add(key)
                            if want is not None and len(picked) == want:
                                break
                    if want is not None and len(picked) == want:
                        break
                if not picked or (want is not None and len(picked) < want):
                    break
                results += [{"request": request["name"], "driver": d, "pool": p, "device": n,
                             **({"adminAccess": True} if admin else {})}
                            for d, p, n in picked]
                if admin:
                    taken -= set(picked)
            else:
                in_use.update(taken)
                allocation = {"devices": {"results": results}, "nodeSelector": {
                    "nodeSelectorTerms": [{"matchFields": [{
                        "key": "metadata.name", "operator": "In", "values": [node]}]}]}}
                kube.mutate("resourceclaims.resource.k8s.io", claim["metadata"]["name"],
                            lambda c, a=allocation: c.setdefault("status", {}).update(allocation=a),
                            claim["metadata"]["namespace"], status=True)
                return

    def _reserve(self, kube, pods: list[dict]) -> None:
        for pod in pods:
            meta = pod["metadata"]
            for status in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
                name = status.get("resourceClaimName")
                claim = kube.find("resourceclaims.resource.k8s.io", name or "",
                                  meta["namespace"])
                st = (claim or {}).get("status") or {}
                if not st.get("allocation"):
                    continue
                ref = {"resource": "pods", "name": meta["name"], "uid": meta["uid"]}
                if ref not in (st.get("reservedFor") or []):
                    kube.mutate("resourceclaims.resource.k8s.io", name,
                                lambda c, r=ref: c["status"].setdefault(
                                    "reservedFor", []).append(r),
                                meta["namespace"], status=True)


def _tpu_prepares_whole_nodes(kube, node: str, results: list[dict]) -> str | None:
    """Google's TPU DRA driver prepares a claim only when it holds every chip of the node
    (kubernetes-sigs/dra-driver-google-tpu v0.2.0 cmd/tpu-dra-kubeletplugin/state.go, its
    error text)."""
    chips = sum(len(s["spec"].get("devices") or []) for s in kube.list(
        "resourceslices.resource.k8s.io", fields=f"spec.nodeName={node}")
        if s["spec"]["driver"] == "tpu.google.com")
    if len(results) != chips:
        return (f"invalid tpu resourceClaim, claim requests partial tpu devices "
                f"({len(results)}), only requests for all tpu devices ({chips}) on the node "
                "are supported")
    return None


# Drivers whose kubelet plugin refuses to prepare some allocations: driver -> fn(kube,
# node, that driver's results of one claim) -> the plugin's error, or None.
PREPARE_RULES = {"tpu.google.com": _tpu_prepares_whole_nodes}


def prepare_error(kube, pod: dict) -> str | None:
    """Why a DRA driver's kubelet plugin fails NodePrepareResources for one of the pod's
    allocated claims, as the kubelet reports it (kubernetes pkg/kubelet/cm/dra/manager.go:
    "NodePrepareResources failed for ResourceClaim <name>: <error>"), or None."""
    node = pod["spec"].get("nodeName") or ""
    for status in (pod.get("status") or {}).get("resourceClaimStatuses") or []:
        name = status.get("resourceClaimName") or ""
        claim = kube.find("resourceclaims.resource.k8s.io", name, pod["metadata"]["namespace"])
        results = ((((claim or {}).get("status") or {}).get("allocation") or {}).get(
            "devices") or {}).get("results") or []
        for driver, rule in PREPARE_RULES.items():
            mine = [r for r in results if r.get("driver") == driver]
            if mine and (error := rule(kube, node, mine)):
                return f"NodePrepareResources failed for ResourceClaim {name}: {error}"
    return None
