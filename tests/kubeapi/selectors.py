"""Label and field selectors with the API server's syntax and its 400s for bad input."""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import bad_request

Predicate = Callable[[dict], bool]

_SET_TERM = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_TERM = re.compile(r"^\s*([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)\s*$")

# Fields the real API server accepts per resource besides metadata.name/namespace.
FIELDS: dict[str, set[str]] = {
    "pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
             "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
             "status.nominatedNodeName"},
    "events": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion",
               "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
               "reportingComponent", "source", "type"},
    "nodes": {"spec.unschedulable"},
    "namespaces": {"status.phase"},
    "secrets": {"type"},
    "jobs.batch": {"status.successful"},
    "replicasets.apps": {"status.replicas"},
    "resourceslices.resource.k8s.io": {"spec.nodeName", "spec.driver"},
}


def _split_terms(text: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t for t in terms if t.strip()]


def label_selector(text: str | None) -> Predicate | None:
    """A predicate over an object's labels, or None for "everything"."""
    if not text or not text.strip():
        return None
    checks: list[Callable[[dict], bool]] = []
    for term in _split_terms(text):
        eq = _EQ_TERM.match(term)
        if eq:
            key, op, value = eq.groups()
            if op == "!=":
                checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
            continue
        st = _SET_TERM.match(term)
        if not st:
            raise bad_request(f"unable to parse requirement: found '{term.strip()}', "
                              "expected: in, notin, =, ==, !=, gt, lt")
        neg, key, op, values = st.groups()
        if op:
            if neg:
                raise bad_request(f"unable to parse requirement: {term.strip()}")
            vals = {v.strip() for v in values.split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lb, k=key, vs=vals: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=vals: lb.get(k) not in vs)
        elif neg:
            checks.append(lambda lb, k=key: k not in lb)
        else:
            checks.append(lambda lb, k=key: k in lb)

    def match(obj: dict) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(c(labels) for c in checks)
    return match


def field_value(obj: dict, path: str) -> str:
    cur: object = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def field_selector(text: str | None, ref: str) -> Predicate | None:
    """A predicate over the fields a resource supports; 400 for an unsupported field."""
    if not text or not text.strip():
        return None
    allowed = {"metadata.name", "metadata.namespace"} | FIELDS.get(ref, set())
    checks = []
    for term in _split_terms(text):
        m = _EQ_TERM.match(term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path, op, value = m.groups()
        if path not in allowed:
            raise bad_request(f'field label not supported: {path}')
        checks.append((path, op == "!=", value))

    def match(obj: dict) -> bool:
        return all((field_value(obj, p) == v) != neg for p, neg, v in checks)
    return match


def matches_label_selector(selector: dict | None, labels: dict) -> bool:
    """A structured LabelSelector (matchLabels/matchExpressions) as workloads carry."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
