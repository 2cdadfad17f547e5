"""``aicp verify --stack`` checks the default StorageClass the stack names (#20): on an
existing on-prem cluster that is the class the config names, found only on the cluster."""

from __future__ import annotations

import json

import pytest

from aicp.verify import stack
from aicp.verify.kube import connect
from tests.verify.test_stack import outputs, world  # noqa: F401 - the fixture

DEFAULT = "storageclass.kubernetes.io/is-default-class"


def found(world, name):  # noqa: F811 - the fixture
    kube, kubeconfig, tmp_path, _ = world
    doc = outputs(kubeconfig, pools=[], addons={})
    doc["defaultStorageClass"] = name
    (tmp_path / "outputs.json").write_text(json.dumps(doc))
    read = stack.read("lab")
    assert read.expectations["defaultStorageClass"] == name
    return stack.check(read.expectations, connect(kubeconfig)).problems


def test_the_named_default_class_on_the_cluster_raises_nothing(world):  # noqa: F811
    assert found(world, "gp3") == []


def test_a_named_class_the_cluster_lacks_is_a_problem(world):  # noqa: F811
    assert found(world, "fast-nvme") == [
        "defaultStorageClass fast-nvme: no such StorageClass (classes: gp3)"]


def test_a_named_class_that_is_not_the_default_is_a_problem(world):  # noqa: F811
    kube = world[0]
    kube.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                 "metadata": {"name": "fast-nvme"}, "provisioner": "rancher.io/local-path"})
    assert found(world, "fast-nvme") == [
        f"defaultStorageClass fast-nvme: not marked default ({DEFAULT}; default: gp3)"]


@pytest.mark.parametrize("name", [None, ""])
def test_no_named_class_is_not_checked(world, name):  # noqa: F811
    assert found(world, name) == []
