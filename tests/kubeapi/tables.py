"""The server-side Table (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``).

What ``kubectl get`` asks for and prints. Columns and cells follow kube-apiserver:
- nodes, pods, namespaces: kubernetes/kubernetes pkg/printers/internalversion/printers.go
  (``nodeColumnDefinitions``/``printNode``, ``podColumnDefinitions``/``printPod``,
  ``namespaceColumnDefinitions``/``printNamespace``); a server-side table is generated with
  ``GenerateOptions{Wide: true}`` (pkg/printers/storage/storage.go), so the priority-1
  columns are always sent and kubectl hides them unless ``-o wide``;
- CustomResourceDefinitions and every other built-in kind this emulator has no printer for:
  ``rest.NewDefaultTableConvertor`` (k8s.io/apiserver pkg/registry/rest/table.go): Name and
  Created At (RFC 3339). CRDs really use it (apiextensions-apiserver pkg/registry/
  customresourcedefinition/etcd.go); for other built-ins a real server prints more columns;
- custom resources: the served version's ``additionalPrinterColumns``, or ``Age`` when it
  has none (apiextensions-apiserver pkg/registry/customresource/tableconvertor/
  tableconvertor.go and ``serveDefaultColumnsIfEmpty`` in pkg/apiserver/
  customresource_handler.go).
Column descriptions are the API's own field documentation (the ``SwaggerDoc`` texts), read
from kubernetes-validate's definitions of the configured minor.
Rows carry ``includeObject`` (default ``PartialObjectMetadata``, ``Object``, ``None``).
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from typing import Any

from tests.schemas import builtin_schema_dir

from .discovery import Resource

MEDIA = "application/json;as=Table;v=v1;g=meta.k8s.io"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def wanted(accept: str) -> str | None:
    """The Table version (``v1``/``v1beta1``) the Accept header asks for first, else None."""
    for media in (accept or "").split(","):
        parts = [p.strip() for p in media.split(";")]
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if parts[0] in ("application/json", "*/*") and params.get("as") == "Table" \
                and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return params["v"]
        if parts[0] in ("application/json", "*/*") and "as" not in params:
            return None  # plain JSON is preferred over any later Table
    return None


@functools.cache
def _definitions(minor: str) -> dict:
    return json.loads((builtin_schema_dir(minor) / "_definitions.json").read_text())["$defs"]


def _doc(minor: str, definition: str, field: str) -> str:
    props = _definitions(minor).get(definition, {}).get("properties", {})
    return (props.get(field) or {}).get("description", "")


def _col(name: str, type_: str, description: str, priority: int = 0, fmt: str = "") -> dict:
    return {"name": name, "type": type_, "format": fmt, "description": description,
            "priority": priority}


def _name(minor: str) -> dict:
    return _col("Name", "string", _doc(minor, _META, "name"), fmt="name")


def _age(minor: str, type_: str = "string") -> dict:
    return _col("Age", type_, _doc(minor, _META, "creationTimestamp"))


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery pkg/util/duration ``HumanDuration``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _since(stamp: str | None) -> str:
    """``translateTimestampSince``: ``<unknown>`` for a zero time."""
    if not stamp:
        return "<unknown>"
    when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - when).total_seconds())


# Built-in printers ---------------------------------------------------------------------------
def _node_columns(minor: str) -> list[dict]:
    info, status = "io.k8s.api.core.v1.NodeSystemInfo", "io.k8s.api.core.v1.NodeStatus"
    return [_name(minor), _col("Status", "string", "The status of the node"),
            _col("Roles", "string", "The roles of the node"), _age(minor),
            _col("Version", "string", _doc(minor, info, "kubeletVersion")),
            _col("Internal-IP", "string", _doc(minor, status, "addresses"), 1),
            _col("External-IP", "string", _doc(minor, status, "addresses"), 1),
            _col("OS-Image", "string", _doc(minor, info, "osImage"), 1),
            _col("Kernel-Version", "string", _doc(minor, info, "kernelVersion"), 1),
            _col("Container-Runtime", "string", _doc(minor, info, "containerRuntimeVersion"), 1)]


def _node_cells(node: dict) -> list:
    status = node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    states = [] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    states = states or ["Unknown"]
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()  # findNodeRoles
    for key, value in (node["metadata"].get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next((a["address"] for a in status.get("addresses") or []
                     if a.get("type") == kind), "<none>")
    return [node["metadata"]["name"], ",".join(states), ",".join(sorted(roles)) or "<none>",
            _since(node["metadata"].get("creationTimestamp")), info.get("kubeletVersion", ""),
            address("InternalIP"), address("ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _pod_columns(minor: str) -> list[dict]:
    status, spec = "io.k8s.api.core.v1.PodStatus", "io.k8s.api.core.v1.PodSpec"
    return [_name(minor),
            _col("Ready", "string", "The aggregate readiness state of this pod for accepting "
                                    "traffic."),
            _col("Status", "string", "The aggregate status of the containers in this pod."),
            _col("Restarts", "string", "The number of times the containers in this pod have "
                                       "been restarted and when the last container in this pod "
                                       "has restarted."),
            _age(minor), _col("IP", "string", _doc(minor, status, "podIP"), 1),
            _col("Node", "string", _doc(minor, spec, "nodeName"), 1),
            _col("Nominated Node", "string", _doc(minor, status, "nominatedNodeName"), 1),
            _col("Readiness Gates", "string", "If specified, all readiness gates will be "
                                              "evaluated for pod readiness. A pod is ready when "
                                              "all its containers are ready AND all conditions "
                                              "specified in the readiness gates have status "
                                              "equal to \"True\" More info: https://git.k8s.io/"
                                              "enhancements/keps/sig-network/580-pod-readiness-"
                                              "gates", 1)]


def _terminated_reason(term: dict, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def _pod_cells(pod: dict) -> list:
    """``printPod``: READY counts ready running containers (and started sidecars), STATUS is
    the last container's waiting/terminated reason, else the phase."""
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
    inits = {c["name"]: c for c in spec.get("initContainers") or []}
    sidecar = {n for n, c in inits.items() if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecar)
    ready = restarts = 0
    reason = status.get("reason") or status.get("phase") or ""
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
           for c in status.get("conditions") or []):
        reason = "SchedulingGated"
    initializing = False
    last_restart = ""
    for i, c in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(c.get("restartCount") or 0)
        state = c.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode", 0) == 0:
            continue
        if c["name"] in sidecar and c.get("started"):
            ready += bool(c.get("ready"))
            continue
        if term:
            reason = _terminated_reason(term, "Init:")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts = sum(int(c.get("restartCount") or 0)
                       for c in status.get("initContainerStatuses") or [] if c["name"] in sidecar)
        running = False
        for c in reversed(status.get("containerStatuses") or []):
            restarts += int(c.get("restartCount") or 0)
            finished = (((c.get("lastState") or {}).get("terminated") or {})
                        .get("finishedAt"))
            last_restart = max(last_restart, finished or "")
            state = c.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated"):
                reason = _terminated_reason(state["terminated"])
            elif c.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"
    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    ips = status.get("podIPs") or []
    gates = spec.get("readinessGates") or []
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    gates_cell = (f"{sum(conds.get(g.get('conditionType')) == 'True' for g in gates)}/"
                  f"{len(gates)}") if gates else "<none>"
    restarts_cell = f"{restarts} ({_since(last_restart)} ago)" if restarts and last_restart \
        else str(restarts)
    return [meta["name"], f"{ready}/{total}", reason, restarts_cell,
            _since(meta.get("creationTimestamp")), (ips[0].get("ip") if ips else "") or "<none>",
            spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
            gates_cell]


def _namespace_columns(minor: str) -> list[dict]:
    return [_name(minor), _col("Status", "string", "The status of the namespace"), _age(minor)]


def _namespace_cells(ns: dict) -> list:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", ""),
            _since(ns["metadata"].get("creationTimestamp"))]


_PRINTERS = {("", "nodes"): (_node_columns, _node_cells),
             ("", "pods"): (_pod_columns, _pod_cells),
             ("", "namespaces"): (_namespace_columns, _namespace_cells)}


# Custom resources ----------------------------------------------------------------------------
_STEP = re.compile(r"\.([\w-]+)|\[(\d+|\*)\]|\[\?\(@\.([\w.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def jsonpath(obj: Any, path: str) -> list:
    """The values ``{path}`` finds (the subset of k8s.io/client-go util/jsonpath that printer
    columns use: fields, indexes, ``[*]`` and ``[?(@.field=="value")]`` filters)."""
    current, pos = [obj], 0
    path = path.strip()
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            return []
        pos = m.end()
        field, index, fkey, fvalue = m.groups()
        nxt = []
        for value in current:
            if field is not None and isinstance(value, dict) and field in value:
                nxt.append(value[field])
            elif index is not None and isinstance(value, list):
                nxt.extend(value if index == "*" else value[int(index):int(index) + 1])
            elif fkey is not None and isinstance(value, list):
                for item in value:
                    got: Any = item
                    for part in fkey.split("."):
                        got = got.get(part) if isinstance(got, dict) else None
                    if got is not None and str(got) == fvalue:
                        nxt.append(item)
        current = nxt
    return current


def _json_cell(type_: str, value: Any) -> Any:
    """``cellForJSONValue``: a value of the column's type, else null; dates are ages."""
    if value is None:
        return None
    if type_ == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if type_ == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if type_ == "boolean" and isinstance(value, bool):
        return value
    if type_ == "string" and isinstance(value, str):
        return value
    if type_ == "date" and isinstance(value, str):
        try:
            return _since(value)
        except ValueError:
            return "<invalid>"
    return None


def _crd_columns(crd: dict, version: str, minor: str) -> list[dict]:
    served = next((v for v in crd["spec"]["versions"] if v["name"] == version), {})
    columns = served.get("additionalPrinterColumns") or [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
         "description": _doc(minor, _META, "creationTimestamp")}]
    return [{**_col(c["name"], c["type"], c.get("description") or
                    f"Custom resource definition column (in JSONPath format): {c['jsonPath']}",
                    int(c.get("priority") or 0), c.get("format", "")),
             "jsonPath": c["jsonPath"]} for c in columns]


# The table ------------------------------------------------------------------------------------
def table(res: Resource, objects: list[dict], meta: dict, *, minor: str,
          crd: dict | None = None, include: str | None = None, version: str = "v1") -> dict:
    """A ``meta.k8s.io`` Table of ``objects`` as kube-apiserver would answer for ``res``."""
    printer = _PRINTERS.get((res.group, res.plural)) if res.crd is None else None
    if printer is not None:
        columns, cells = printer[0](minor), printer[1]
    elif crd is not None:
        columns = _crd_columns(crd, res.version, minor)
        paths = [c.pop("jsonPath") for c in columns]

        def cells(obj: dict, columns=columns, paths=paths) -> list:
            found = [jsonpath(obj, p) for p in paths]
            return [obj["metadata"]["name"]] + [_json_cell(c["type"], f[0] if f else None)
                                                for c, f in zip(columns, found, strict=True)]
        columns = [_name(minor)] + columns
    else:
        columns = [_name(minor), _col("Created At", "date",
                                      _doc(minor, _META, "creationTimestamp"))]

        def cells(obj: dict) -> list:
            return [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp")]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells(obj)}
        phase = (obj.get("status") or {}).get("phase") if res.key == ("", "pods") else None
        if phase in ("Succeeded", "Failed"):  # podSuccessConditions / podFailedConditions
            row["conditions"] = [{"type": "Completed", "status": "True",
                                  "reason": phase, "message": "The pod has completed successfully."
                                  if phase == "Succeeded" else "The pod failed."}]
        if include in (None, "", "PartialObjectMetadata"):
            row["object"] = {"kind": "PartialObjectMetadata",
                             "apiVersion": f"meta.k8s.io/{version}", "metadata": obj["metadata"]}
        elif include == "Object":
            row["object"] = obj
        rows.append(row)
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}", "metadata": meta,
            "columnDefinitions": columns, "rows": rows}
