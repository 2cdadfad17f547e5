"""What kube-apiserver's pod validation refuses beyond the schema, for the pod specs
probes send (Pods, and the templates of Deployments, Jobs and the like).

Each rule names the upstream function it follows, in kubernetes/kubernetes
``pkg/apis/core/validation/validation.go`` (or apimachinery's label validation), with its
message; causes come in the API server's shape (reason, field path, "Invalid value: ...").
The API server does not refuse ``nodeName`` beside an affinity it contradicts: the kubelet
rejects such a pod at admission (``NodeAffinity``), see controllers/kubelet.py.
"""

from __future__ import annotations

import re
from decimal import Decimal

from kubernetes.utils import parse_quantity

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
_NAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
             "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
             "'123-abc', regex used for validation is "
             "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                  "characters, '-' or '.', and must start and end with an alphanumeric "
                  "character (e.g. 'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
# Templates whose pod spec sits at spec.template.spec (CronJob one level deeper).
TEMPLATED = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"}


def _cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "field": field, "message": message}


def _invalid(field: str, value, message: str) -> dict[str, str]:
    return _cause("FieldValueInvalid", field, f'Invalid value: "{value}": {message}')


def label_key_problems(key: str) -> list[str]:
    """apimachinery validation ``IsQualifiedName`` (``ValidateLabelName``)."""
    prefix, _, name = key.rpartition("/")
    problems = []
    if not name or len(name) > 63 or not _NAME.match(name):
        problems.append(_NAME_MSG if name else "name part must be non-empty")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        problems.append("prefix part " + _SUBDOMAIN_MSG)
    return problems


def label_value_problems(value) -> list[str]:
    """apimachinery validation ``IsValidLabelValue``."""
    if not isinstance(value, str):
        return [_LABEL_VALUE_MSG]
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        problems.append(_LABEL_VALUE_MSG)
    return problems


def _labels(labels: dict, field: str) -> list[dict]:
    """``unversionedvalidation.ValidateLabels``: keys qualified names, values label values."""
    out = []
    for key, value in (labels or {}).items():
        out += [_invalid(field, key, m) for m in label_key_problems(key)]
        out += [_invalid(field, value, m) for m in label_value_problems(value)]
    return out


def _requirement(req: dict, field: str) -> list[dict]:
    """``ValidateNodeSelectorRequirement``."""
    op, values = req.get("operator"), req.get("values") or []
    out = []
    if op in ("In", "NotIn") and not values:
        out.append(_cause("FieldValueRequired", f"{field}.values",
                          "Required value: must be specified when `operator` is 'In' or "
                          "'NotIn'"))
    elif op in ("Exists", "DoesNotExist") and values:
        out.append(_cause("FieldValueForbidden", f"{field}.values",
                          "Forbidden: may not be specified when `operator` is 'Exists' or "
                          "'DoesNotExist'"))
    elif op in ("Gt", "Lt") and len(values) != 1:
        out.append(_cause("FieldValueRequired", f"{field}.values",
                          "Required value: must be specified single value when `operator` is "
                          "'Lt' or 'Gt'"))
    elif op not in ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"):
        out.append(_invalid(f"{field}.operator", op, "not a valid selector operator"))
    out += [_invalid(f"{field}.key", req.get("key", ""), m)
            for m in label_key_problems(req.get("key", ""))]
    for i, value in enumerate(values):
        out += [_invalid(f"{field}.values[{i}]", value, m) for m in label_value_problems(value)]
    return out


def _field_requirement(req: dict, field: str) -> list[dict]:
    """``ValidateNodeFieldSelectorRequirement``: In/NotIn with exactly one value, key
    ``metadata.name`` only (``nodeFieldSelectorValidators``), the value a node name."""
    op, values = req.get("operator"), req.get("values") or []
    out = []
    if op in ("In", "NotIn"):
        if len(values) != 1:
            out.append(_cause("FieldValueRequired", f"{field}.values",
                              "Required value: must be only one value when `operator` is 'In' "
                              "or 'NotIn' for node field selector"))
    else:
        out.append(_invalid(f"{field}.operator", op, "not a valid selector operator"))
    if req.get("key") != "metadata.name":
        out.append(_invalid(f"{field}.key", req.get("key", ""), "not a valid field selector key"))
    else:
        for i, value in enumerate(values):
            if not isinstance(value, str) or len(value) > 253 or not _PREFIX.match(value):
                out.append(_invalid(f"{field}.values[{i}]", value, _SUBDOMAIN_MSG))
    return out


def _term(term: dict, field: str) -> list[dict]:
    """``ValidateNodeSelectorTerm``."""
    out = []
    for j, req in enumerate(term.get("matchExpressions") or []):
        out += _requirement(req, f"{field}.matchExpressions[{j}]")
    for j, req in enumerate(term.get("matchFields") or []):
        out += _field_requirement(req, f"{field}.matchFields[{j}]")
    return out


def _affinity(affinity: dict, field: str) -> list[dict]:
    """``validateNodeAffinity``: required terms (``ValidateNodeSelector``) and preferred
    terms' preferences."""
    node = (affinity or {}).get("nodeAffinity") or {}
    out = []
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    base = f"{field}.nodeAffinity"
    if required is not None:
        terms = required.get("nodeSelectorTerms") or []
        path = f"{base}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        if not terms:
            out.append(_cause("FieldValueRequired", path,
                              "Required value: must have at least one node selector term"))
        for i, term in enumerate(terms):
            out += _term(term, f"{path}[{i}]")
    for i, pref in enumerate(node.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        out += _term(pref.get("preference") or {},
                     f"{base}.preferredDuringSchedulingIgnoredDuringExecution[{i}].preference")
    return out


def _native(resource: str) -> bool:
    """``helper.IsNativeResource``: no domain, or a ``kubernetes.io`` one."""
    return "/" not in resource or resource.split("/")[0].endswith("kubernetes.io")


def _resources(resources: dict, field: str) -> list[dict]:
    """``ValidateResourceRequirements``: a request may not exceed its limit; an extended
    resource (not overcommitable) needs a limit and a request equal to it."""
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    out = []
    for name, qty in requests.items():
        try:
            req: Decimal = parse_quantity(qty)
            lim = parse_quantity(limits[name]) if name in limits else None
        except ValueError:
            continue  # the schema reports malformed quantities
        path = f"{field}.requests[{name}]"
        if _native(name):
            if lim is not None and req > lim:
                out.append(_invalid(path, qty, f"must be less than or equal to {name} limit "
                                               f"of {limits[name]}"))
        elif lim is None:
            out.append(_cause("FieldValueRequired", f"{field}.limits[{name}]",
                              "Required value: Limit must be set for non overcommitable "
                              "resources"))
        elif req != lim:
            out.append(_invalid(path, qty, f"must be equal to {name} limit of {limits[name]}"))
    return out


def _containers(spec: dict, field: str) -> list[dict]:
    """``validateContainers``/``validateInitContainers`` (names unique across both:
    Duplicate value), ``validateContainerPorts`` (port names unique in a container) and
    ``AccumulateUniqueHostPorts`` (hostPort/protocol/hostIP unique in the pod)."""
    out = []
    names: set[str] = set()
    host_ports: set[tuple] = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            path = f"{field}.{kind}[{i}]"
            name = c.get("name")
            if name in names:
                out.append(_cause("FieldValueDuplicate", f"{path}.name",
                                  f'Duplicate value: "{name}"'))
            names.add(name)
            port_names: set[str] = set()
            for j, port in enumerate(c.get("ports") or []):
                pname = port.get("name")
                if pname and pname in port_names:
                    out.append(_cause("FieldValueDuplicate", f"{path}.ports[{j}].name",
                                      f'Duplicate value: "{pname}"'))
                if pname:
                    port_names.add(pname)
                if port.get("hostPort"):
                    key = (port["hostPort"], port.get("protocol", "TCP"), port.get("hostIP", ""))
                    if key in host_ports:
                        out.append(_cause("FieldValueDuplicate", f"{path}.ports[{j}].hostPort",
                                          f'Duplicate value: "{port["hostPort"]}/'
                                          f'{port.get("protocol", "TCP")}"'))
                    host_ports.add(key)
            out += _resources(c.get("resources") or {}, f"{path}.resources")
    return out


def pod_spec_causes(spec: dict, field: str) -> list[dict[str, str]]:
    """``ValidatePodSpec`` for the rules above."""
    if not isinstance(spec, dict):
        return []
    out = _labels(spec.get("nodeSelector") or {}, f"{field}.nodeSelector")
    out += _affinity(spec.get("affinity") or {}, f"{field}.affinity")
    out += _containers(spec, field)
    return out


def causes(obj: dict) -> list[dict[str, str]]:
    """Pod-spec causes of a Pod or a workload's pod template."""
    kind = obj.get("kind")
    if kind == "Pod":
        return pod_spec_causes(obj.get("spec") or {}, "spec")
    if kind in TEMPLATED:
        return pod_spec_causes(((obj.get("spec") or {}).get("template") or {}).get("spec") or {},
                               "spec.template.spec")
    if kind == "CronJob":
        job = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}
        return pod_spec_causes((job.get("template") or {}).get("spec") or {},
                               "spec.jobTemplate.spec.template.spec")
    return []
