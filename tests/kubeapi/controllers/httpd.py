"""What pods answer over HTTP: busybox ``httpd`` serving files from a mounted ConfigMap.

Probes run ``httpd -f -p PORT -h DIR`` from a pinned busybox image with a ConfigMap at
DIR; this plays that server (the query string is ignored, ``/`` is ``index.html``) so
gateways, Prometheus scrapes and curl pods in the emulator get the pod's real content.
Anything else is a connection refused (status 0).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..selectors import matches_label_selector

REFUSED = (0, "connection refused")


def running(pod: dict) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")


def serve(kube, pod: dict, port: int, path: str) -> tuple[int, str]:
    """(status, body) of ``GET path`` on the pod's ``port``."""
    if not running(pod):
        return REFUSED
    for container in pod["spec"].get("containers") or []:
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not any(a == "httpd" or a.endswith("/httpd") for a in argv):
            continue
        opts = _options(argv)
        if int(str(opts.get("-p", "80")).rsplit(":", 1)[-1]) != port:
            continue
        home = opts.get("-h", ".").rstrip("/") or "/"
        files = _mounted_files(kube, pod, container, home)
        name = urlsplit(path).path.lstrip("/")
        name = name + "index.html" if not name or name.endswith("/") else name
        if name in files:
            return 200, files[name]
        return 404, "<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD></HTML>\n"
    return REFUSED


def _options(argv: list[str]) -> dict[str, str]:
    opts, i = {}, argv.index(next(a for a in argv if a.endswith("httpd"))) + 1
    while i < len(argv):
        if argv[i] in ("-p", "-h", "-c", "-u", "-r") and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            i += 1
    return opts


def _mounted_files(kube, pod: dict, container: dict, home: str) -> dict[str, str]:
    mount = next((m for m in container.get("volumeMounts") or []
                  if m["mountPath"].rstrip("/") == home), None)
    volume = next((v for v in pod["spec"].get("volumes") or []
                   if mount and v["name"] == mount["name"]), None)
    ref = (volume or {}).get("configMap")
    if not ref:
        return {}
    cm = kube.find("configmaps", ref["name"], pod["metadata"]["namespace"]) or {}
    data = cm.get("data") or {}
    if ref.get("items"):
        return {i["path"]: data[i["key"]] for i in ref["items"] if i["key"] in data}
    return dict(data)


def service_endpoints(kube, namespace: str, name: str, port: int) -> list[tuple[dict, int]]:
    """Ready pods behind a Service port, with the container port it targets."""
    svc = kube.find("services", name, namespace)
    if svc is None:
        return []
    spec_port = next((p for p in svc["spec"].get("ports") or [] if p["port"] == port), None)
    selector = svc["spec"].get("selector")
    if spec_port is None or not selector:
        return []
    target = spec_port.get("targetPort", port)
    out = []
    for pod in kube.list("pods", namespace):
        if not running(pod) or not matches_label_selector({"matchLabels": selector},
                                                          pod["metadata"].get("labels") or {}):
            continue
        number = target if isinstance(target, int) else next(
            (p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []
             if p.get("name") == target), None)
        if number is not None:
            out.append((pod, int(number)))
    return out
