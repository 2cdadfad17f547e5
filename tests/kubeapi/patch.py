"""The four patch types the API server accepts.

Strategic merge and server-side apply read list semantics from the schema: built-in kinds
from ``x-kubernetes-patch-merge-key``/``-strategy`` and ``x-kubernetes-list-type``/
``-list-map-keys`` in kubernetes-validate's definitions, custom resources from their CRD's
``openAPIV3Schema``. Apply is an approximation: one field set per manager, no conflicts
between managers (``force`` is accepted and ignored).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from tests.schemas import builtin_schema_dir

from .errors import ApiError, bad_request
from .json_tree import clone

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class Schema:
    """Walks a schema by field name, following ``$ref`` into a ``$defs`` table."""

    def __init__(self, node: dict | None, defs: dict | None = None):
        self.defs = defs or {}
        self.node = self._resolve(node or {})

    def _resolve(self, node: dict) -> dict:
        while isinstance(node, dict) and "$ref" in node:
            node = self.defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        for combinator in ("allOf", "anyOf", "oneOf"):
            for alt in node.get(combinator) or []:
                alt = self._resolve(alt)
                if "properties" in alt or "items" in alt:
                    return alt
        return node

    def field(self, name: str) -> Schema:
        props = self.node.get("properties") or {}
        if name in props:
            return Schema(props[name], self.defs)
        extra = self.node.get("additionalProperties")
        return Schema(extra if isinstance(extra, dict) else {}, self.defs)

    def items(self) -> Schema:
        return Schema(self.node.get("items") or {}, self.defs)

    def get(self, key: str) -> Any:
        return self.node.get(key)


@functools.cache
def _defs(minor: str) -> dict:
    return json.loads((builtin_schema_dir(minor) / "_definitions.json").read_text())["$defs"]


@functools.cache
def _def_names(minor: str) -> dict[tuple[str, str], str]:
    out = {}
    for name, d in _defs(minor).items():
        for g in d.get("x-kubernetes-group-version-kind") or []:
            av = f"{g['group']}/{g['version']}" if g.get("group") else g["version"]
            out[(av, g["kind"])] = name
    return out


def builtin_schema(minor: str, api_version: str, kind: str) -> Schema:
    name = _def_names(minor).get((api_version, kind))
    return Schema(_defs(minor).get(name, {}) if name else {}, _defs(minor))


def crd_schema(crd: dict, version: str) -> Schema:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return Schema((v.get("schema") or {}).get("openAPIV3Schema") or {})
    return Schema({})


# JSON merge patch (RFC 7386) --------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# Strategic merge patch ----------------------------------------------------------------------
_DELETE = object()


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if not (k.startswith("$") and (k == "$patch" or "/" in k or k == "$retainKeys"))}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def strategic_merge(target: dict, patch: dict, schema: Schema) -> dict:
    out = _merge_map(target, patch, schema)
    return {} if out is _DELETE else out


def _merge_map(orig: dict, patch: dict, schema: Schema) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip(patch)
    out = dict(orig)
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            out[name] = [x for x in out.get(name) or [] if x not in value]
            continue
        if value is None:
            out.pop(key, None)
            continue
        sub = schema.field(key)
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged = _merge_map(current, value, sub)
            if merged is _DELETE:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list) and "merge" in (sub.get("x-kubernetes-patch-strategy") or ""):
            out[key] = _merge_list(current if isinstance(current, list) else [], value, sub)
        else:
            out[key] = _strip(value)
    return out


def _merge_list(orig: list, patch: list, schema: Schema) -> list:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    key = schema.get("x-kubernetes-patch-merge-key")
    if not key:  # a list of scalars merged as a set
        return list(orig) + [p for p in patch if p not in orig]
    items = schema.items()
    out = list(orig)
    for p in patch:
        if not isinstance(p, dict):
            continue
        idx = next((i for i, o in enumerate(out)
                    if isinstance(o, dict) and o.get(key) == p.get(key)), None)
        if p.get("$patch") == "delete":
            out = [o for o in out if not (isinstance(o, dict) and o.get(key) == p.get(key))]
        elif idx is None:
            out.append(_strip(p))
        else:
            out[idx] = _merge_map(out[idx], p, items)
    return out


# JSON patch (RFC 6902) ----------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        else:
            doc = doc[part]
    return doc


def json_patch(target: dict, ops: list[dict]) -> dict:
    doc = clone(target)
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    for op in ops:
        try:
            doc = _apply_op(doc, op)
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(422, "Invalid",
                           f"the server rejected our request due to an error in our request: "
                           f"json patch {op.get('op')} operation on {op.get('path')!r} failed: "
                           f"{e!r}") from None
    return doc


def _apply_op(doc: Any, op: dict) -> Any:
    kind, parts = op["op"], _pointer(op["path"])
    if kind == "test":
        if _walk(doc, parts) != op["value"]:
            raise ValueError("test failed")
        return doc
    if kind in ("move", "copy"):
        value = clone(_walk(doc, _pointer(op["from"])))
        if kind == "move":
            doc = _apply_op(doc, {"op": "remove", "path": op["from"]})
        return _apply_op(doc, {"op": "add", "path": op["path"], "value": value})
    if not parts:
        return clone(op["value"]) if kind in ("add", "replace") else {}
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if kind == "add":
            parent.insert(len(parent) if last == "-" else int(last), clone(op["value"]))
        elif kind == "remove":
            parent.pop(int(last))
        elif kind == "replace":
            parent[int(last)] = clone(op["value"])
        return doc
    if kind in ("remove", "replace") and last not in parent:
        raise KeyError(last)
    if kind == "remove":
        del parent[last]
    else:
        parent[last] = clone(op["value"])
    return doc


# Server-side apply (approximation) ----------------------------------------------------------
def _list_keys(schema: Schema) -> list[str] | None:
    if schema.get("x-kubernetes-list-type") == "map":
        return list(schema.get("x-kubernetes-list-map-keys") or [])
    key = schema.get("x-kubernetes-patch-merge-key")
    return [key] if key and "merge" in (schema.get("x-kubernetes-patch-strategy") or "") else None


def _item_key(item: Any, keys: list[str]) -> Any:
    return tuple(item.get(k) for k in keys) if isinstance(item, dict) else item


def apply_merge(live: Any, applied: Any, previous: Any, schema: Schema) -> Any:
    """Merge an applied configuration into the live object; drop what this manager no
    longer applies (fields in ``previous`` but not in ``applied``)."""
    if isinstance(applied, dict) and isinstance(live, dict):
        prev = previous if isinstance(previous, dict) else {}
        out = dict(live)
        for key in prev:
            if key not in applied:
                out.pop(key, None)
        for key, value in applied.items():
            out[key] = apply_merge(live.get(key), value, prev.get(key), schema.field(key))
        return out
    if isinstance(applied, list) and isinstance(live, list):
        keys = _list_keys(schema)
        if keys is None:
            if schema.get("x-kubernetes-list-type") == "set":
                gone = [p for p in (previous or []) if p not in applied]
                return [x for x in live if x not in gone] + [a for a in applied if a not in live]
            return clone(applied)
        prev = {_item_key(p, keys): p for p in previous or []} if isinstance(previous,
                                                                            list) else {}
        wanted = {_item_key(a, keys): a for a in applied}
        out = []
        for item in live:
            k = _item_key(item, keys)
            if k in wanted:
                out.append(apply_merge(item, wanted.pop(k), prev.get(k), schema.items()))
            elif k not in prev:
                out.append(item)
        return out + [clone(a) for a in applied if _item_key(a, keys) in wanted]
    return clone(applied)
