"""``/openapi/v2`` and ``/openapi/v3``: the API's schemas, as a real client expects them.

kube-apiserver serves the OpenAPI v3 discovery index at ``/openapi/v3``
(``{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=..."}}}``,
k8s.io/kube-openapi pkg/handler3) and one OpenAPI 3.0 document per group/version, and the
whole API as one Swagger 2.0 document at ``/openapi/v2`` (pkg/handler). kubectl's
``--validate=strict`` (the default) first asks the v3 document of the object's group/version
whether its PATCH operation takes the ``fieldValidation`` query parameter
(k8s.io/cli-runtime pkg/resource/query_param_verifier_v3.go, ``supportsQueryParamV3``); when
it does, kubectl leaves validation to the server (which this emulator does strictly), else it
validates client-side against ``/openapi/v2``.

Schemas of built-in kinds come from kubernetes-validate's definitions for the configured minor
(the API's own OpenAPI, rewritten to ``#/components/schemas`` or ``#/definitions``); custom
resources from their CRD's ``openAPIV3Schema``, named as the apiextensions-apiserver names
them (reversed group, version, kind: ``io.ray.v1.RayCluster``, apiextensions-apiserver
pkg/controller/openapi/builder). Differences: no patch-strategy extensions
(``x-kubernetes-patch-merge-key``; kubernetes-validate drops them), and ``/openapi/v2``
in JSON only: a client that accepts only the protobuf encoding gets 406 Not Acceptable, as
from a server without that codec.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from tests.schemas import builtin_schema_dir

from .discovery import Discovery, Resource

_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


@functools.cache
def _definitions(minor: str) -> dict:
    return json.loads((builtin_schema_dir(minor) / "_definitions.json").read_text())["$defs"]


def _convert(node: Any, prefix: str) -> Any:
    """JSON Schema as kubernetes-validate writes it -> OpenAPI: refs under ``prefix``,
    ``type: [t, "null"]`` -> ``type: t``."""
    if isinstance(node, list):
        return [_convert(v, prefix) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = prefix + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            out[key] = types[0] if len(types) == 1 else types
        else:
            out[key] = _convert(value, prefix)
    return out


def _closure(minor: str, roots: list[str]) -> dict[str, dict]:
    defs = _definitions(minor)
    seen: dict[str, dict] = {}
    todo = [r for r in roots if r in defs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = defs[name]
        text = json.dumps(defs[name])
        for ref in set(_refs(text)):
            if ref not in seen and ref in defs:
                todo.append(ref)
    return seen


def _refs(text: str) -> list[str]:
    out, marker = [], '"$ref": "#/$defs/'
    start = text.find(marker)
    while start >= 0:
        end = text.find('"', start + len(marker))
        out.append(text[start + len(marker):end])
        start = text.find(marker, end)
    return out


def _schemas(minor: str, names: dict[str, dict], prefix: str) -> dict[str, dict]:
    out = {}
    for name, schema in names.items():
        if name == _INT_OR_STRING:  # as kube-openapi publishes it
            out[name] = {"description": schema.get("description", ""), "type": "string",
                         "format": "int-or-string"}
        else:
            out[name] = _convert(schema, prefix)
    return out


@functools.cache
def _builtin_names(minor: str) -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> definition name."""
    out = {}
    for name, schema in _definitions(minor).items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            out[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return out


def crd_schema_name(group: str, version: str, kind: str) -> str:
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def _crd_schema(crd: dict, res: Resource, prefix: str) -> dict:
    served = next(v for v in crd["spec"]["versions"] if v["name"] == res.version)
    schema = dict((served.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"})
    props = dict(schema.get("properties") or {})
    props.update(apiVersion={"type": "string"}, kind={"type": "string"},
                 metadata={"$ref": prefix + _OBJECT_META})
    return {**schema, "properties": props, "x-kubernetes-group-version-kind": [
        {"group": res.group, "version": res.version, "kind": res.kind}]}


# Paths -------------------------------------------------------------------------------------
def _param(name: str, where: str = "query", v3: bool = True) -> dict:
    out: dict[str, Any] = {"name": name, "in": where, "uniqueItems": True}
    if where == "path":
        out["required"] = True
    if v3:
        out["schema"] = {"type": "string"}
    else:
        out["type"] = "string"
    return out


def _operation(action: str, res: Resource, ref: str, v3: bool, op_id: str) -> dict:
    gvk = {"group": res.group, "version": res.version, "kind": res.kind}
    params = [_param("dryRun", v3=v3)] if action in ("post", "put", "patch", "delete") else []
    if action in ("post", "put", "patch"):
        params += [_param("fieldManager", v3=v3), _param("fieldValidation", v3=v3)]
    if action == "patch":
        params.append(_param("force", v3=v3))
    if action == "list":
        params += [_param(p, v3=v3) for p in ("labelSelector", "fieldSelector", "limit",
                                              "continue", "resourceVersion", "watch")]
    body_ref = ref if action != "list" else ref + "List"
    response = ({"content": {"application/json": {"schema": {"$ref": body_ref}}},
                 "description": "OK"} if v3 else
                {"description": "OK", "schema": {"$ref": body_ref}})
    out: dict[str, Any] = {"operationId": op_id, "parameters": params,
                           "responses": {"200": response}, "x-kubernetes-action": action,
                           "x-kubernetes-group-version-kind": gvk}
    if action in ("post", "put", "patch"):
        types = (["application/apply-patch+yaml", "application/json-patch+json",
                  "application/merge-patch+json", "application/strategic-merge-patch+json"]
                 if action == "patch" else ["*/*"])
        if v3:
            schema = {"$ref": ref} if action != "patch" else {"type": "object"}
            out["requestBody"] = {"content": {t: {"schema": schema} for t in types},
                                  "required": True}
        else:
            out["consumes"] = types
            out["parameters"] = [{"name": "body", "in": "body", "required": True,
                                  "schema": {"$ref": ref} if action != "patch"
                                  else {"type": "object"}}] + params
    return out


def _paths(resources: list[Resource], refs: dict[str, str], v3: bool) -> dict:
    paths: dict[str, Any] = {}
    for res in resources:
        ref = refs.get(res.plural)
        if ref is None or res.verbs == ["create"]:
            continue
        base = f"/api/{res.version}" if not res.group else f"/apis/{res.group}/{res.version}"
        where = f"{base}/namespaces/{{namespace}}/{res.plural}" if res.namespaced \
            else f"{base}/{res.plural}"
        path_params = [_param("namespace", "path", v3)] if res.namespaced else []
        op = f"{res.group or 'core'}.{res.version}.{res.kind}"
        collection: dict[str, Any] = {"parameters": path_params}
        if "list" in res.verbs:
            collection["get"] = _operation("list", res, ref, v3, f"list.{op}")
        if "create" in res.verbs:
            collection["post"] = _operation("post", res, ref, v3, f"create.{op}")
        item: dict[str, Any] = {"parameters": path_params + [_param("name", "path", v3)]}
        for verb, action in (("get", "get"), ("update", "put"), ("patch", "patch"),
                             ("delete", "delete")):
            if verb in res.verbs:
                item["get" if verb == "get" else action] = _operation(
                    action, res, ref, v3, f"{verb}.{op}")
        paths[where] = collection
        paths[where + "/{name}"] = item
    return paths


# Documents -------------------------------------------------------------------------------
def _gv_parts(discovery: Discovery, gv: str) -> tuple[list[Resource], dict, dict[str, str]]:
    """(resources, schemas by name, plural -> schema name) of one group/version, with refs
    written under ``#/components/schemas/``."""
    return _gv_parts_with(discovery, gv, "#/components/schemas/")


def _gv_parts_with(discovery: Discovery, gv: str, prefix: str):
    group, _, version = gv.rpartition("/")
    resources = sorted((r for r in discovery.by_path.values()
                        if r.group == group and r.version == version),
                       key=lambda r: r.plural)
    names = _builtin_names(discovery.minor)
    roots, refs, custom = [], {}, {}
    for res in resources:
        name = names.get((res.group, res.version, res.kind))
        if name is not None:
            roots += [name, name + "List"]
            refs[res.plural] = prefix + name
        elif res.crd is not None and res.crd in discovery.crds:
            name = crd_schema_name(res.group, res.version, res.kind)
            custom[name] = _crd_schema(discovery.crds[res.crd], res, prefix)
            custom[name + "List"] = {"type": "object", "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": prefix + name}}}}
            roots.append(_OBJECT_META)
            refs[res.plural] = prefix + name
    roots.append(_STATUS)
    schemas = _schemas(discovery.minor, _closure(discovery.minor, roots), prefix)
    schemas.update(custom)
    return resources, schemas, refs


def _gv_key(gv: str) -> str:
    return f"api/{gv}" if "/" not in gv else f"apis/{gv}"


def index(discovery: Discovery) -> dict:
    """``/openapi/v3``: one entry per served group/version, with a content hash."""
    paths = {}
    for group, versions in discovery.groups.items():
        for version in versions:
            gv = f"{group}/{version}" if group else version
            crds = sorted(r.crd for r in discovery.by_path.values()
                          if r.group == group and r.version == version and r.crd)
            stamp = json.dumps([discovery.minor, gv, crds,
                                [(discovery.crds[c]["metadata"].get("uid"),
                                  discovery.crds[c]["metadata"].get("generation"))
                                 for c in crds if c in discovery.crds]])
            digest = hashlib.sha512(stamp.encode()).hexdigest()[:128].upper()
            paths[_gv_key(gv)] = {"serverRelativeURL": f"/openapi/v3/{_gv_key(gv)}?hash="
                                                       f"{digest}"}
    return {"paths": paths}


def document_v3(discovery: Discovery, key: str) -> dict | None:
    """``/openapi/v3/api/v1``, ``/openapi/v3/apis/<group>/<version>``; None if not served."""
    gv = key[len("api/"):] if key.startswith("api/") else key[len("apis/"):]
    if not key.startswith(("api/", "apis/")) or _gv_key(gv) not in index(discovery)["paths"]:
        return None
    resources, schemas, refs = _gv_parts(discovery, gv)
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": f"v{discovery.minor}.0"},
            "paths": _paths(resources, refs, v3=True),
            "components": {"schemas": schemas}}


def document_v2(discovery: Discovery) -> dict:
    """``/openapi/v2``: every served group/version in one Swagger 2.0 document."""
    definitions: dict[str, dict] = {}
    paths: dict[str, Any] = {}
    for group, versions in discovery.groups.items():
        for version in versions:
            gv = f"{group}/{version}" if group else version
            resources, schemas, refs = _gv_parts_with(discovery, gv, "#/definitions/")
            definitions.update(schemas)
            paths.update(_paths(resources, refs, v3=False))
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": f"v{discovery.minor}.0"},
            "paths": paths, "definitions": definitions}
