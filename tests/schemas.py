"""Offline schema validation, strict where the API server is strict.

Built-in kinds validate against ``kubernetes-validate``'s ``-local-strict`` JSON schemas for
a Kubernetes minor; custom resources against the ``openAPIV3Schema`` of the served version
in the pinned CRDs under ``../shared/crds``. Validators are built once per (minor, kind)
with a crawled ``referencing`` registry: ``kubernetes_validate.validate`` reloads 1.5 MB of
definitions per call (~21 ms), a cached validator checks an object in ~0.3 ms.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_SCHEMA_ROOT = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
_DEFS_URI = "/api/_definitions.json"


_COMBINATORS = ("oneOf", "anyOf", "allOf", "not")


class SchemaNotFound(LookupError):
    """No built-in schema and no CRD describe this apiVersion/kind."""


def builtin_schema_dir(minor: str) -> Path:
    path = _SCHEMA_ROOT / f"v{minor}.0-local-strict"
    if not path.is_dir():
        raise SchemaNotFound(f"kubernetes-validate ships no schemas for Kubernetes {minor}")
    return path


def _builtin_file(api_version: str, kind: str) -> str:
    # kubernetes-validate names files <kind>-<group prefix>-<version>.json:
    # rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1.
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{short}.json"


@functools.cache
def _builtin_registry(minor: str) -> Registry:
    defs = json.loads((builtin_schema_dir(minor) / "_definitions.json").read_text())
    return Registry().with_resource(_DEFS_URI, Resource(defs, DRAFT202012)).crawl()


@functools.cache
def builtin_validator(minor: str, api_version: str, kind: str) -> jsonschema.Validator | None:
    """The strict validator for a built-in kind, or None when the minor does not serve it."""
    path = builtin_schema_dir(minor) / _builtin_file(api_version, kind)
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    # The file may describe a same-named kind of another group (networking.k8s.io vs
    # networking.istio.io share the prefix): trust it only when its GVK matches.
    group, _, version = api_version.rpartition("/")
    gvks = schema.get("x-kubernetes-group-version-kind") or []
    if not any(g.get("group", "") == group and g["version"] == version and g["kind"] == kind
               for g in gvks):
        return None
    return jsonschema.Draft202012Validator(schema, registry=_builtin_registry(minor))


def crd_to_jsonschema(node: Any, *, branch: bool = False) -> Any:
    """Turn a CRD ``openAPIV3Schema`` into JSON Schema with the API server's strictness.

    Structural schemas prune unknown fields; the API server's strict field validation
    (the default for kubectl and client-side create since 1.27) rejects them. We reject.
    """
    if isinstance(node, list):
        return [crd_to_jsonschema(n, branch=branch) for n in node]
    if not isinstance(node, dict):
        return node
    # oneOf/anyOf/allOf/not branches only add constraints to the fields their parent
    # declares (structural schemas forbid new properties there): never close them.
    out = {k: crd_to_jsonschema(v, branch=k in _COMBINATORS) for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None) if out.get("additionalProperties") is False else None
    elif "properties" in out and "additionalProperties" not in out and not branch:
        out["additionalProperties"] = False
    if node.get("x-kubernetes-embedded-resource"):
        # Embedded objects carry apiVersion/kind/metadata even where the schema omits them.
        props = out.setdefault("properties", {})
        for key in ("apiVersion", "kind", "metadata"):
            props.setdefault(key, {})
    return out


class CrdSchemas:
    """Served versions of a set of CRDs, keyed by (apiVersion, kind)."""

    def __init__(self, crds: Iterable[dict]):
        self.crds: dict[str, dict] = {}
        self._schemas: dict[tuple[str, str], str] = {}
        for crd in crds:
            self.add(crd)

    def add(self, crd: dict) -> None:
        spec = crd["spec"]
        self.crds[crd["metadata"]["name"]] = crd
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema") or {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True}
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            # Every emulated cluster installs the same CRDs: convert each schema once.
            self._schemas[key] = _schema_text(schema)

    def remove(self, name: str) -> None:
        crd = self.crds.pop(name, None)
        if crd is None:
            return
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            self._schemas.pop(key, None)

    def knows(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._schemas

    def validator(self, api_version: str, kind: str) -> jsonschema.Validator | None:
        if (api_version, kind) not in self._schemas:
            return None
        return _crd_validator(self._schemas[(api_version, kind)])


# id(schema) -> (schema, its JSON text). An emulated cluster seeds the CRDs parsed once per
# process as they are, so the same schema objects come back; the entry keeps its schema
# alive, so an id is never reused for another one.
_SCHEMA_TEXT: dict[int, tuple[dict, str]] = {}


def _schema_text(schema: dict) -> str:
    known = _SCHEMA_TEXT.get(id(schema))
    if known is None or known[0] is not schema:
        known = _SCHEMA_TEXT[id(schema)] = (schema, json.dumps(schema, default=str))
    return known[1]


@functools.cache
def _crd_validator(openapi_json: str) -> jsonschema.Validator:
    """The validator of one served version's ``openAPIV3Schema`` (as JSON text)."""
    # Go's RE2 takes a flag group anywhere ("^(?i)[a-z]..." in Kueue 0.19.2's AdmissionCheck
    # parameters.kind); Python's re only at the start, where it means the same.
    schema = json.loads(openapi_json.replace('"^(?i)', '"(?i)^'))
    props = schema.setdefault("properties", {})
    # Every object carries these whether or not the CRD author listed them.
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props["metadata"] = {"type": "object"}
    return jsonschema.Draft202012Validator(crd_to_jsonschema(schema))


def load_crd_files(paths: Iterable[Path]) -> list[dict]:
    """CustomResourceDefinitions from YAML files (libyaml: 7 MB in ~2 s, not ~16 s)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crds = []
    for path in sorted(paths):
        for doc in yaml.load_all(path.read_text(), Loader=loader):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    return crds


@functools.cache
def shared_crds(crd_root: Path) -> CrdSchemas:
    """Every CRD under ``crd_root`` (``../shared/crds``), parsed once per process."""
    return CrdSchemas(load_crd_files(crd_root.rglob("*.yaml")))


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def describe(error: jsonschema.ValidationError) -> str:
    """One line naming the field: ``spec.containers[0].imagee: unknown field``."""
    if error.validator == "additionalProperties" and error.validator_value is False:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        prefix = _path(error)
        return "; ".join(
            f"{prefix + '.' if prefix != '<root>' else ''}{name}: unknown field" for name in extra)
    return f"{_path(error)}: {error.message}"


class Validator:
    """Validate objects as a cluster of one minor with a set of CRDs would."""

    def __init__(self, minor: str, crds: CrdSchemas | None = None):
        builtin_schema_dir(minor)  # fail early for an unsupported minor
        self.minor = minor
        self.crds = crds or CrdSchemas([])

    def schema_for(self, obj: dict) -> jsonschema.Validator:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        validator = self.crds.validator(api_version, kind) or builtin_validator(
            self.minor, api_version, kind)
        if validator is None:
            raise SchemaNotFound(
                f"{api_version} {kind} is not served by Kubernetes {self.minor} "
                "or by any of the loaded CRDs")
        return validator

    def errors(self, obj: dict) -> list[str]:
        """Every violation as one line naming the field; empty when the object is valid."""
        validator = self.schema_for(obj)
        found = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        return [describe(e) for e in found]
