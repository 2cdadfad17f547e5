"""What pods answer over HTTP: busybox ``httpd`` serving files from a mounted ConfigMap.

Probes run ``httpd -f -p PORT -h DIR`` from a pinned busybox image with a ConfigMap at
DIR; this plays that server (the query string is ignored, ``/`` is ``index.html``) so
gateways, Prometheus scrapes and curl pods in the emulator get the pod's real content.
Anything else is a connection refused (status 0).

CGI as busybox httpd does it (mirror/busybox networking/httpd.c, handle_incoming_and_exit
and send_cgi_and_exit): a URL under ``/cgi-bin/`` is executed, not read (``/cgi-bin/``
itself is 403), from its own directory with ``execv`` (so a file without an executable
mode is 404) and the server's environment plus ``REQUEST_METHOD``/``QUERY_STRING``; its
output gets ``HTTP/1.0 200 OK`` put in front unless it starts with ``HTTP`` or
``Status: ``. Here the script really runs, under the host's ``/bin/sh``, with each
emptyDir the container mounts backed by a scratch directory that lives as long as the
pod (its mount path rewritten in the script): state a script keeps there, such as a
request counter, lasts across requests and is lost when the pod is replaced, as on a
node. Scripts are the probes' own, run with a 10 s limit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from urllib.parse import urlsplit

from ..selectors import matches_label_selector
from . import llmd

REFUSED = (0, "connection refused")
_SCRATCH: dict[str, str] = {}  # pod uid/volume -> host directory backing that emptyDir


def running(pod: dict) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")


NOT_FOUND = "<HTML><HEAD><TITLE>404 Not Found</TITLE></HEAD></HTML>\n"


def serve(kube, pod: dict, port: int, path: str, method: str = "GET") -> tuple[int, str]:
    """(status, body) of ``method path`` on the pod's ``port``."""
    code, _, body = respond(kube, pod, port, path, method)
    return code, body


def respond(kube, pod: dict, port: int, path: str,
            method: str = "GET") -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of ``method path`` on the pod's ``port``."""
    if not running(pod):
        return REFUSED[0], {}, REFUSED[1]
    served = llmd.respond(kube, pod, port, method, path, {}, "")  # llm-d's model servers
    if served is not None:
        return served
    for container in pod["spec"].get("containers") or []:
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not any(a == "httpd" or a.endswith("/httpd") for a in argv):
            continue
        opts = _options(argv)
        if int(str(opts.get("-p", "80")).rsplit(":", 1)[-1]) != port:
            continue
        home = opts.get("-h", ".").rstrip("/") or "/"
        files = _mounted_files(kube, pod, container, home)
        url = urlsplit(path)
        name = url.path.lstrip("/")
        if name.startswith("cgi-bin/"):
            if name == "cgi-bin/":
                return 403, {}, "<HTML><HEAD><TITLE>403 Forbidden</TITLE></HEAD></HTML>\n"
            script = files.get(name)
            if script is None or not script[1] & 0o111:
                return 404, {}, NOT_FOUND  # execv failed
            return _cgi(pod, container, name, script[0], method, url.query)
        name = name + "index.html" if not name or name.endswith("/") else name
        if name in files:
            ctype = "text/plain" if name.endswith(".txt") else (
                "text/html" if name.endswith((".htm", ".html")) else "application/octet-stream")
            return 200, {"Content-Type": ctype}, files[name][0]
        return 404, {}, NOT_FOUND
    return REFUSED[0], {}, REFUSED[1]


def _cgi(pod: dict, container: dict, name: str, text: str, method: str,
         query: str) -> tuple[int, dict[str, str], str]:
    for mount in container.get("volumeMounts") or []:
        volume = next((v for v in pod["spec"].get("volumes") or []
                       if v["name"] == mount["name"]), {})
        if "emptyDir" in volume:
            text = text.replace(mount["mountPath"].rstrip("/"),
                                _scratch(f"{pod['metadata'].get('uid')}/{volume['name']}"))
    work = tempfile.mkdtemp(prefix="aicp-cgi-")
    try:
        script = os.path.join(work, os.path.basename(name))
        with open(script, "w") as f:
            f.write(text)
        os.chmod(script, 0o755)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REQUEST_METHOD": method,
               "QUERY_STRING": query, "SCRIPT_NAME": "/" + name,
               "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.0",
               **{e["name"]: str(e.get("value", "")) for e in container.get("env") or []
                  if "value" in e}}
        try:
            out = subprocess.run([script], cwd=work, env=env, capture_output=True,
                                 timeout=10, check=False).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.TimeoutExpired):
            return 404, {}, NOT_FOUND
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not out:
        return REFUSED[0], {}, "empty reply from server"
    status = 200
    if out.startswith("Status: ") or out.startswith("HTTP"):
        first, _, out = out.partition("\n")
        status = int(first.split()[1])
    head, sep, body = out.replace("\r\n", "\n").partition("\n\n")
    if not sep:
        return status, {}, out
    headers = {}
    for line in head.splitlines():
        key, _, value = line.partition(":")
        headers["Content-Type" if key.lower() == "content-type" else key] = value.strip()
    return status, headers, body


def _scratch(key: str) -> str:
    if key not in _SCRATCH:
        _SCRATCH[key] = tempfile.mkdtemp(prefix="aicp-emptydir-")
    return _SCRATCH[key]


@atexit.register
def _remove_scratch() -> None:
    for path in _SCRATCH.values():
        shutil.rmtree(path, ignore_errors=True)


def _options(argv: list[str]) -> dict[str, str]:
    opts, i = {}, argv.index(next(a for a in argv if a.endswith("httpd"))) + 1
    while i < len(argv):
        if argv[i] in ("-p", "-h", "-c", "-u", "-r") and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            i += 1
    return opts


def _mounted_files(kube, pod: dict, container: dict, home: str) -> dict[str, tuple[str, int]]:
    """path -> (content, mode) of the ConfigMap mounted at ``home`` (defaultMode 0644)."""
    mount = next((m for m in container.get("volumeMounts") or []
                  if m["mountPath"].rstrip("/") == home), None)
    volume = next((v for v in pod["spec"].get("volumes") or []
                   if mount and v["name"] == mount["name"]), None)
    ref = (volume or {}).get("configMap")
    if not ref:
        return {}
    cm = kube.find("configmaps", ref["name"], pod["metadata"]["namespace"]) or {}
    data = cm.get("data") or {}
    mode = int(ref.get("defaultMode", 0o644))
    if ref.get("items"):
        return {i["path"]: (data[i["key"]], int(i.get("mode", mode)))
                for i in ref["items"] if i["key"] in data}
    return {key: (value, mode) for key, value in data.items()}


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


def proxied(kube, plural: str, namespace: str, name: str, port: str | None, method: str,
            path: str, query: dict) -> tuple[int, dict, str] | None:
    """The API server's service/pod proxy to an httpd in a pod; None: nobody serves it.

    A service proxy picks one Ready endpoint of the port (by number or name), as kube-proxy
    would for one connection; a refused connection is the API server's 503 (its proxy
    error responder, k8s.io/apimachinery pkg/util/proxy: "error trying to reach service").
    """
    if plural == "services":
        svc = kube.find("services", name, namespace)
        spec_port = next((p for p in (svc or {}).get("spec", {}).get("ports") or []
                          if port is None or str(p["port"]) == port or p.get("name") == port),
                         None)
        if spec_port is None:
            return None
        backends = service_endpoints(kube, namespace, name, spec_port["port"])
        if not backends:
            return None
        pod, number = backends[0]
    else:
        pod = kube.find("pods", name, namespace)
        if pod is None or not (port or "").isdigit():
            return None
        number = int(port or 0)
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    code, headers, body = respond(kube, pod, number, path + (f"?{qs}" if qs else ""), method)
    if code == REFUSED[0]:
        ip = (pod.get("status") or {}).get("podIP", "")
        return 503, {"Content-Type": "text/plain"}, (
            f"error trying to reach service: dial tcp {ip}:{number}: connect: "
            "connection refused")
    return code, {"Content-Type": "text/plain", **headers}, body
