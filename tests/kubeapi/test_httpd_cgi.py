"""The emulated busybox httpd runs CGI scripts the way busybox does (mirror/busybox
networking/httpd.c), and the emulated Prometheus 3 refuses scrapes that are not in an
exposition format: what ai_service_metrics' counting workload relies on."""

from __future__ import annotations

import shutil

import pytest

from tests.kubeapi.controllers import httpd
from tests.kubeapi.controllers.prometheus import _content_type_problem

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="no /bin/sh to run CGI")

COUNT = "#!/bin/sh\nn=$(cat /data/n 2>/dev/null || echo 0)\necho $((n + 1)) > /data/n\n" \
        "printf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' $((n + 1))\n"


class Kube:
    def __init__(self, data: dict[str, str]):
        self.cm = {"metadata": {"name": "www", "namespace": "ns"}, "data": data}

    def find(self, kind, name, namespace=None):
        return self.cm if kind == "configmaps" and name == "www" else None


def pod(uid: str, mode: int = 0o755, defaults: int | None = None) -> dict:
    volume: dict = {"name": "www", "items": [{"key": "count", "path": "cgi-bin/count",
                                              "mode": mode},
                                             {"key": "page", "path": "page"}]}
    if defaults is not None:
        volume["defaultMode"] = defaults
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid},
            "status": {"phase": "Running"},
            "spec": {"containers": [{
                "name": "httpd", "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                "volumeMounts": [{"name": "www", "mountPath": "/www"},
                                 {"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "www", "configMap": volume},
                            {"name": "data", "emptyDir": {}}]}}


def test_a_cgi_script_runs_keeps_state_in_its_pods_empty_dir_and_loses_it_with_the_pod():
    kube = Kube({"count": COUNT, "page": "hello\n"})
    first = pod("uid-1")
    answers = [httpd.respond(kube, first, 8080, "/cgi-bin/count") for _ in range(3)]
    assert [a[2] for a in answers] == ["1\n", "2\n", "3\n"]
    assert answers[0][:2] == (200, {"Content-Type": "text/plain"})
    # a replacement pod starts from an empty emptyDir
    assert httpd.respond(kube, pod("uid-2"), 8080, "/cgi-bin/count")[2] == "1\n"
    # a static file is read, not run; without a known suffix it is octet-stream
    assert httpd.respond(kube, first, 8080, "/page") == (
        200, {"Content-Type": "application/octet-stream"}, "hello\n")


def test_a_script_without_an_executable_mode_is_not_found_and_cgi_bin_is_forbidden():
    kube = Kube({"count": COUNT, "page": "hello\n"})
    assert httpd.respond(kube, pod("uid-3", mode=0o644), 8080, "/cgi-bin/count")[0] == 404
    assert httpd.respond(kube, pod("uid-3"), 8080, "/cgi-bin/")[0] == 403
    assert httpd.respond(kube, pod("uid-3"), 8080, "/cgi-bin/missing")[0] == 404
    assert httpd.respond(kube, pod("uid-3"), 9090, "/cgi-bin/count")[0] == 0  # refused


@pytest.mark.parametrize(("ctype", "refused"), [
    ("text/plain; version=0.0.4; charset=utf-8", False),
    ("application/openmetrics-text; version=1.0.0", False),
    ("", True),
    ("application/octet-stream", True),
])
def test_prometheus_3_refuses_a_scrape_without_an_exposition_content_type(ctype, refused):
    assert bool(_content_type_problem(ctype)) is refused
