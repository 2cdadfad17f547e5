"""What the first contact with a cluster says when it goes wrong somewhere other than the
cluster (#27, "Also"): a dead proxy is named as the proxy, not the cluster refusing; a
server whose ``/version`` names no version is never judged "Kubernetes 1."."""

from __future__ import annotations

import io

import pytest
import yaml
from rich.console import Console

from aicp.verify import checklist, session
from aicp.verify.kube import ConfigError, connect


@pytest.mark.parametrize("info, minor", [
    ({"major": "1", "minor": "35+", "gitVersion": "v1.35.2-eks-1"}, "1.35"),
    ({"gitVersion": "v1.36.1-gke.100"}, "1.36"),  # no minor field: gitVersion says it
    ({"major": "1", "minor": ""}, ""),             # nothing to go on: unknown, not "1."
    ({}, ""),
])
def test_the_minor_comes_from_minor_or_gitversion_and_is_never_half(info, minor):
    assert checklist.minor_of(info) == minor


def test_a_version_without_any_version_asks_for_checklist(kubeapi_factory, tmp_path, capsys):
    kube = kubeapi_factory("empty")
    kube.version_info = lambda: {"platform": "linux/amd64"}  # type: ignore[method-assign]
    out = io.StringIO()
    code = session.run(session.Options(kubeconfig=kube.write_kubeconfig(tmp_path / "kc")),
                       Console(file=out))
    assert code == 2
    assert capsys.readouterr().err == (
        "error: the cluster's /version names no Kubernetes version (neither minor nor "
        "gitVersion): pass --checklist 1.34|1.35|1.36|1.37\n")
    assert "Kubernetes 1." not in out.getvalue()


def test_a_dead_proxy_is_named_as_the_proxy(kubeapi_factory, tmp_path):
    kube = kubeapi_factory("empty")
    path = kube.write_kubeconfig(tmp_path / "kc.yaml")
    doc = yaml.safe_load(path.read_text())
    doc["clusters"][0]["cluster"]["proxy-url"] = "http://127.0.0.1:9"  # discard: nothing listens
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        connect(path).version(timeout=5)
    assert str(err.value) == (
        f"cannot reach the proxy http://127.0.0.1:9 (the kubeconfig's proxy-url for cluster "
        f"{kube.url}): Connection refused; check proxy-url and that the proxy runs")
