"""Requests and their answers (verify/kube/transport.py)."""

from __future__ import annotations

import pytest

from aicp.verify.probe import ProbeError


def test_a_server_answering_html_is_one_line_naming_the_login_page(kubeapi, kube):
    kubeapi.aggregate("html.example", lambda *a: (200, {"Content-Type": "text/html"},
                                                  b"<html><body>Sign in</body></html>"))
    with pytest.raises(ProbeError, match=r"answered GET /apis/html.example/v1 with "
                                         r"text/html, not the Kubernetes API \('<html>"):
        kube.request("GET", "/apis/html.example/v1")
