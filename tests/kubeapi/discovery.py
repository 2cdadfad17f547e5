"""Which resources the emulated API server serves, derived from shipped data.

Built-in resources come from the paths, verbs and response types of the ``kubernetes``
client's generated API classes, filtered to the kinds ``kubernetes-validate`` knows for the
configured minor. Custom resources come from CustomResourceDefinitions as they are created.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes.client.api as client_api

from tests.schemas import builtin_schema_dir

_SERIALIZE = re.compile(
    r"def _(\w+)_serialize\(.*?method='(\w+)',\s*resource_path='([^']+)'", re.S)
_RESPONSE = re.compile(r"def (\w+)_with_http_info\(.*?'20[01]': (?:\"([\w\[\], ]+)\"|None)", re.S)
_MODEL_PREFIX = re.compile(r"^(?:[A-Z][a-z]+)*V\d+(?:alpha\d+|beta\d+)?(?=[A-Z])")
_VERB = (("delete_collection_", "deletecollection"), ("create_", "create"), ("list_", "list"),
         ("read_", "get"), ("replace_", "update"), ("patch_", "patch"), ("delete_", "delete"),
         ("connect_", "connect"))
_VERB_ORDER = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

# shortNames and categories of the built-in resources, as a real kube-apiserver's discovery
# gives them (kubernetes/kubernetes api/discovery/api__v1.json, apis__<group>__<version>.json
# and aggregated_v2.json, the documents its integration test keeps; each value comes from the
# resource's ShortNames()/Categories() in pkg/registry/<group>/<resource>/storage/storage.go).
# kubectl resolves `kubectl get ns`, `get crd` and `get all` with them.
_ALL, _EXT = ["all"], ["api-extensions"]
BUILTIN_NAMES: dict[tuple[str, str], tuple[list[str], list[str]]] = {
    ("", "componentstatuses"): (["cs"], []), ("", "configmaps"): (["cm"], []),
    ("", "endpoints"): (["ep"], []), ("", "events"): (["ev"], []),
    ("", "limitranges"): (["limits"], []), ("", "namespaces"): (["ns"], []),
    ("", "nodes"): (["no"], []), ("", "persistentvolumeclaims"): (["pvc"], []),
    ("", "persistentvolumes"): (["pv"], []), ("", "pods"): (["po"], _ALL),
    ("", "replicationcontrollers"): (["rc"], _ALL), ("", "resourcequotas"): (["quota"], []),
    ("", "serviceaccounts"): (["sa"], []), ("", "services"): (["svc"], _ALL),
    ("apps", "daemonsets"): (["ds"], _ALL), ("apps", "deployments"): (["deploy"], _ALL),
    ("apps", "replicasets"): (["rs"], _ALL), ("apps", "statefulsets"): (["sts"], _ALL),
    ("autoscaling", "horizontalpodautoscalers"): (["hpa"], _ALL),
    ("batch", "cronjobs"): (["cj"], _ALL), ("batch", "jobs"): ([], _ALL),
    ("certificates.k8s.io", "certificatesigningrequests"): (["csr"], []),
    ("events.k8s.io", "events"): (["ev"], []),
    ("networking.k8s.io", "ingresses"): (["ing"], []),
    ("networking.k8s.io", "networkpolicies"): (["netpol"], []),
    ("policy", "poddisruptionbudgets"): (["pdb"], []),
    ("scheduling.k8s.io", "priorityclasses"): (["pc"], []),
    ("storage.k8s.io", "storageclasses"): (["sc"], []),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (["crd", "crds"], _EXT),
    ("apiregistration.k8s.io", "apiservices"): ([], _EXT),
    **{("admissionregistration.k8s.io", plural): ([], _EXT) for plural in (
        "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
        "validatingadmissionpolicies", "validatingadmissionpolicybindings",
        "mutatingadmissionpolicies", "mutatingadmissionpolicybindings")},
}


@dataclass
class Resource:
    """One served resource of one group/version, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: list[str]
    subresources: dict[str, str] = field(default_factory=dict)  # name -> kind
    delete_returns_status: bool = False
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    crd: str | None = None
    scale_paths: tuple[str, str] | None = None  # CR spec/status replicas paths

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: every version of a resource shares one store, as in etcd."""
        return (self.group, self.plural)

    @property
    def ref(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def discovery_entries(self) -> list[dict]:
        out = [{"name": self.plural, "singularName": self.kind.lower(),
                "namespaced": self.namespaced, "kind": self.kind, "verbs": self.verbs}]
        if self.short_names:
            out[0]["shortNames"] = self.short_names
        if self.categories:
            out[0]["categories"] = self.categories
        for sub, kind in sorted(self.subresources.items()):
            verbs = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"],
                     "log": ["get"], "binding": ["create"], "eviction": ["create"]}.get(
                         sub, ["get", "create", "delete", "patch", "update"])
            out.append({"name": f"{self.plural}/{sub}", "singularName": "",
                        "namespaced": self.namespaced, "kind": kind, "verbs": verbs})
        return out


def _model_kind(model: str | None) -> str | None:
    if not model or model in ("object", "str"):
        return None
    return _MODEL_PREFIX.sub("", model)


def _split(path: str) -> tuple[str, str, list[str]] | None:
    if path.startswith("/api/v1/"):
        group, version, rest = "", "v1", path[len("/api/v1/"):]
    elif path.startswith("/apis/"):
        parts = path[len("/apis/"):].split("/", 2)
        if len(parts) < 3:
            return None
        group, version, rest = parts
    else:
        return None
    segs = [s for s in rest.split("/") if s]
    return (group, version, segs) if segs and segs[0] != "watch" else None


@functools.lru_cache(maxsize=1)
def _client_operations() -> list[tuple[str, str, str, str | None]]:
    """(operation, HTTP method, path, 2xx response model) for every generated operation."""
    ops = []
    for path in sorted(Path(client_api.__file__).parent.glob("*_api.py")):
        text = path.read_text()
        models = {name: model for name, model in _RESPONSE.findall(text)}
        for op, method, resource_path in _SERIALIZE.findall(text):
            ops.append((op, method, resource_path, models.get(op)))
    return ops


@functools.cache
def _served_kinds(minor: str) -> frozenset[tuple[str, str, str]]:
    defs = json.loads((builtin_schema_dir(minor) / "_definitions.json").read_text())["$defs"]
    return frozenset((g.get("group", ""), g["version"], g["kind"]) for d in defs.values()
                     for g in d.get("x-kubernetes-group-version-kind") or [])


@functools.cache
def _builtin(minor: str, alpha: bool) -> tuple[Resource, ...]:
    served = _served_kinds(minor)
    found: dict[tuple[str, str, str], Resource] = {}
    subs: dict[tuple[str, str, str], dict[str, str]] = {}
    for op, _method, path, model in _client_operations():
        split = _split(path)
        if split is None:
            continue
        group, version, segs = split
        if "alpha" in version and not alpha:
            continue
        namespaced = len(segs) >= 3 and segs[0] == "namespaces" and segs[1] == "{namespace}"
        if namespaced:
            segs = segs[2:]
        verb = next(v for p, v in _VERB if op.startswith(p)) if any(
            op.startswith(p) for p, _ in _VERB) else None
        key = (group, version, segs[0])
        if len(segs) >= 3:  # plural/{name}/subresource[/{path}]
            sub_kind = _model_kind(model) if verb in ("get", "update", "create") else None
            entry = subs.setdefault(key, {})
            if sub_kind or segs[2] not in entry:
                entry[segs[2]] = sub_kind or ""
            continue
        res = found.get(key)
        if res is None:
            res = found[key] = Resource(group, version, segs[0], "", namespaced, [])
        res.namespaced = res.namespaced or namespaced
        if verb and verb != "connect" and verb not in res.verbs:
            res.verbs.append(verb)
        kind = _model_kind(model) if verb in ("get", "create", "update", "patch") else None
        if kind and not res.kind:
            res.kind = kind
        if verb == "delete":
            res.delete_returns_status = model in ("V1Status", "object")
    out = []
    for key, res in found.items():
        if not res.kind or (res.group, res.version, res.kind) not in served:
            continue
        if "list" in res.verbs:
            res.verbs.append("watch")
        res.verbs.sort(key=_VERB_ORDER.index)
        res.subresources = {s: k or res.kind for s, k in subs.get(key, {}).items()}
        short, categories = BUILTIN_NAMES.get((res.group, res.plural), ([], []))
        res.short_names, res.categories = list(short), list(categories)
        out.append(res)
    return tuple(out)


def builtin_resources(minor: str, alpha: bool = False) -> list[Resource]:
    """Built-in resources a cluster of this minor serves (alpha APIs are off by default)."""
    return [Resource(**{**r.__dict__, "verbs": list(r.verbs),
                        "subresources": dict(r.subresources)}) for r in _builtin(minor, alpha)]


def crd_resources(crd: dict) -> list[Resource]:
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale = subresources.get("scale")
        out.append(Resource(
            group=spec["group"], version=version["name"], plural=names["plural"],
            kind=names["kind"], namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            verbs=list(_VERB_ORDER), subresources={
                s: ("Scale" if s == "scale" else names["kind"]) for s in subresources},
            short_names=list(names.get("shortNames") or []),
            categories=list(names.get("categories") or []), crd=crd["metadata"]["name"],
            scale_paths=(scale["specReplicasPath"], scale["statusReplicasPath"])
            if scale else None))
    return out


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version ordering: GA > beta > alpha, then by number (v2 > v1)."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (-1, 0, 0)
    return ({None: 2, "beta": 1, "alpha": 0}[m.group(2)], int(m.group(1)), int(m.group(3) or 0))


class Discovery:
    """The resources being served and the discovery documents describing them."""

    def __init__(self, minor: str, alpha: bool = False):
        self.minor = minor
        self._builtin = builtin_resources(minor, alpha)
        self._crds: dict[str, list[Resource]] = {}
        self.crds: dict[str, dict] = {}  # name -> the CRD served (its schemas, its columns)
        self._rebuild()

    def _rebuild(self) -> None:
        resources = self._builtin + [r for rs in self._crds.values() for r in rs]
        self.by_path = {(r.group, r.version, r.plural): r for r in resources}
        self.by_gvk = {(r.api_version, r.kind): r for r in resources}
        groups: dict[str, list[str]] = {}
        for r in resources:
            versions = groups.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
        for versions in groups.values():
            versions.sort(key=version_priority, reverse=True)
        self.groups = groups
        by_ref: dict[str, Resource] = {}
        for r in resources:
            best = by_ref.get(r.ref)
            if best is None or version_priority(r.version) > version_priority(best.version):
                by_ref[r.ref] = r
        self.by_ref = by_ref

    def add_crd(self, crd: dict) -> None:
        self._crds[crd["metadata"]["name"]] = crd_resources(crd)
        self.crds[crd["metadata"]["name"]] = crd
        self._rebuild()

    def remove_crd(self, name: str) -> None:
        self.crds.pop(name, None)
        if self._crds.pop(name, None) is not None:
            self._rebuild()

    def resolve(self, ref: str) -> Resource:
        """``pods``, ``jobs.batch``, ``clusterqueues.kueue.x-k8s.io`` or ``Kind.group``."""
        res = self.by_ref.get(ref)
        if res is None:
            for r in self.by_ref.values():
                if f"{r.kind}.{r.group}".rstrip(".") == ref or (r.kind == ref and not r.group):
                    return r
            raise KeyError(f"no served resource {ref!r}")
        return res

    def for_object(self, obj: dict) -> Resource | None:
        return self.by_gvk.get((obj.get("apiVersion", ""), obj.get("kind", "")))

    # Documents -----------------------------------------------------------------------
    def api_versions(self, address: str) -> dict:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}

    def api_group(self, group: str) -> dict | None:
        versions = self.groups.get(group)
        if not versions or not group:
            return None
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def api_group_list(self) -> dict:
        groups = [self.api_group(g) for g in self.groups if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict | None:
        entries = [e for r in self.by_path.values() if r.group == group and r.version == version
                   for e in r.discovery_entries()]
        if not entries:
            return None
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": entries}
