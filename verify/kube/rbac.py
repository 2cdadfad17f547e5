"""Permissions: a 403 becomes ``Forbidden``, naming what an admin must grant."""

from __future__ import annotations

import json
import re

from kubernetes.client.exceptions import ApiException

from ..probe import ProbeError


class Forbidden(ProbeError):
    """A 403: the reason names verb, resource and namespace so an admin can grant it."""

    def __init__(self, verb: str, resource: str, namespace: str | None = None):
        self.verb, self.resource, self.namespace = verb, resource, namespace
        where = f" in namespace {namespace}" if namespace else " (cluster-wide)"
        super().__init__(f"missing permission: {verb} {resource}{where}")


# The authorizer's 403 message: 'User "u" cannot VERB resource "RES" in API group "G" in the
# namespace "NS"' (or "at the cluster scope"); before the group was added, without the
# group part (kubernetes staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/
# errors.go, forbiddenMessage).
_RBAC = re.compile(r'cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
                   r'(?: in API group "(?P<group>[^"]*)")?'
                   r'(?: in the namespace "(?P<namespace>[^"]+)")?')
_VERBS = ("delete_collection", "create", "read", "list", "patch", "replace", "delete",
          "connect_get", "connect_post", "watch")


def forbidden(exc: ApiException, method: str = "", namespace: str | None = None) -> Forbidden:
    """Turn a 403 into ``Forbidden`` from RBAC's message, else from the API method name."""
    message = ""
    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except ValueError:
        pass
    found = _RBAC.search(message)
    if found:
        resource = found["resource"]
        if found["group"]:
            resource = f"{resource}.{found['group']}"
        return Forbidden(found["verb"], resource, found["namespace"])
    verb = next((v for v in _VERBS if method.startswith(v)), method or "access")
    rest = method.removeprefix(verb).strip("_").replace("namespaced_", "")
    rest = rest.removesuffix("_for_all_namespaces")
    return Forbidden(verb.replace("delete_collection", "deletecollection").split("_")[0],
                     (rest or "resource") + "s", namespace)
