"""Field validation with the API server's 422 shape: one cause per offending field."""

from __future__ import annotations

import re

import jsonschema

from tests.schemas import CrdSchemas, SchemaNotFound, Validator, _path

from . import pod_validation
from .errors import invalid

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# Kinds whose names must be DNS labels rather than subdomains.
_LABEL_NAMED = {"Namespace", "Service"}


def _cause(error: jsonschema.ValidationError) -> list[dict[str, str]]:
    field = _path(error)
    field = "" if field == "<root>" else field
    prefix = field + "." if field else ""
    if error.validator == "additionalProperties" and error.validator_value is False:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return [{"reason": "FieldValueInvalid", "field": prefix + name,
                 "message": f'unknown field "{name}"'} for name in extra]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [{"reason": "FieldValueRequired", "field": prefix + missing,
                 "message": "Required value"}]
    if error.validator == "enum":
        allowed = ", ".join(f'"{v}"' for v in error.validator_value if v is not None)
        return [{"reason": "FieldValueNotSupported", "field": field,
                 "message": f'Unsupported value: "{error.instance}": supported values: '
                            f"{allowed}"}]
    if error.validator == "type":
        return [{"reason": "FieldValueTypeInvalid", "field": field,
                 "message": f"Invalid value: {error.instance!r}: {error.message}"}]
    return [{"reason": "FieldValueInvalid", "field": field,
             "message": f"Invalid value: {error.message}"}]


def _metadata_causes(obj: dict) -> list[dict[str, str]]:
    meta = obj.get("metadata") or {}
    causes = []
    name = meta.get("name")
    pattern = _DNS_LABEL if obj.get("kind") in _LABEL_NAMED else _DNS_SUBDOMAIN
    limit = 63 if obj.get("kind") in _LABEL_NAMED else 253
    if not name:
        causes.append({"reason": "FieldValueRequired", "field": "metadata.name",
                       "message": "name or generateName is required"})
    elif len(name) > limit or not pattern.match(name):
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                       "message": f'Invalid value: "{name}": a lowercase RFC 1123 '
                                  f'{"label" if limit == 63 else "subdomain"} must consist of '
                                  "lower case alphanumeric characters, '-' or '.'"})
    for key, value in (meta.get("labels") or {}).items():
        if not _QUALIFIED.match(key) or len(key.split("/")[-1]) > 63:
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels",
                           "message": f'Invalid value: "{key}": name part must be a valid '
                                      "qualified name"})
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.labels",
                           "message": f'Invalid value: "{value}": a valid label must be an '
                                      "empty string or consist of alphanumeric characters, "
                                      "'-', '_' or '.'"})
    return causes


class ObjectValidator:
    """Validates writes as the API server would for one minor and the CRDs it serves."""

    def __init__(self, minor: str):
        self.crds = CrdSchemas([])
        self.schemas = Validator(minor, self.crds)

    def causes(self, obj: dict) -> list[dict[str, str]]:
        causes = _metadata_causes(obj)
        try:
            validator = self.schemas.schema_for(obj)
        except SchemaNotFound:
            return causes  # the router has already checked that the kind is served
        found = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        for error in found:
            causes.extend(_cause(error))
        if not found:  # beyond the schema: what pkg/apis/core/validation refuses
            causes.extend(pod_validation.causes(obj))
        return causes

    def check(self, obj: dict, group: str) -> None:
        causes = self.causes(obj)
        if causes:
            raise invalid(group, obj.get("kind", ""),
                          (obj.get("metadata") or {}).get("name", ""), causes)
