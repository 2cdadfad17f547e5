"""The program's own decisions across target and addons: what the stack config
turns into, under the offline engine's mocks."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from aicp.cli import offline
from aicp.cli.plan import stack_config
from aicp.stacks.program import main as program

REPO = Path(__file__).resolve().parents[2]
RELEASE = "kubernetes:helm.sh/v3:Release"


def gcp_config(**addons) -> dict:
    raw = stack_config(REPO, "gcp")
    raw["aicp:addons"] = {**raw.get("aicp:addons", {}), **addons}
    return raw


def release(plan: offline.Plan, chart: str) -> offline.Resource:
    return next(r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart)


def test_mixed_allocators_under_the_gpu_operator_fail_in_one_line():
    # gpu-operator v26.7.0: the validator's plugin check (cmd/nvidia-validator/main.go
    # validateGPUResource) waits for nvidia.com/gpu on every GPU node, and is removed only
    # when the device plugin is off cluster-wide (controllers/object_controls.go, "plugin").
    raw = gcp_config()
    pools = raw["aicp:gpuPools"]
    raw["aicp:gpuPools"] = [{**pools[0], "allocator": "device-plugin"}, *pools[1:]]
    with pytest.raises(pulumi.RunError) as err:
        offline.run(program, raw, stack="gcp")
    message = str(err.value)
    assert message.startswith("aicp:gpuPools[0].allocator: 'device-plugin' beside 'dra'")
    assert "\n" not in message


def test_mixed_allocators_are_allowed_without_the_gpu_operator():
    raw = gcp_config(gpuOperator={"enabled": False})
    pools = raw["aicp:gpuPools"]
    raw["aicp:gpuPools"] = [{**pools[0], "allocator": "device-plugin"}, *pools[1:]]
    plan = offline.run(program, raw, stack="gcp")
    assert {p["allocator"] for p in plan.outputs["gpuPools"]} == {"device-plugin", "dra"}


@pytest.mark.parametrize("stack", ["aws", "gcp", "azure"])
def test_every_example_uses_one_allocator(stack):
    pools = stack_config(REPO, stack)["aicp:gpuPools"]
    assert len({p.get("allocator", "dra") for p in pools}) == 1


def test_nfd_can_be_switched_off_for_clusters_that_run_it():
    on = offline.run(program, gcp_config(), stack="gcp")
    off = offline.run(program, gcp_config(gpuOperator={"nfd": False}), stack="gcp")
    assert release(on, "gpu-operator").inputs["values"]["nfd"] == {"enabled": True}
    assert release(off, "gpu-operator").inputs["values"]["nfd"] == {"enabled": False}


def test_gateway_service_type_reaches_istio_for_clusters_without_load_balancers():
    # Istio's gateway deployment controller reads the Service type from the Gateway's
    # annotation networking.istio.io/service-type (Istio docs, "Automated deployment").
    plan = offline.run(program, gcp_config(gateway={"serviceType": "NodePort"}), stack="gcp")
    gateway = next(r for r in plan.of_type(
        "kubernetes:gateway.networking.k8s.io/v1:Gateway"))
    assert gateway.inputs["metadata"]["annotations"] == {
        "networking.istio.io/service-type": "NodePort"}
    default = offline.run(program, gcp_config(), stack="gcp")
    gateway = next(r for r in default.of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway"))
    assert "annotations" not in gateway.inputs["metadata"]


def test_on_aws_the_gateway_load_balancer_goes_before_the_vpc():
    # Destroy order is the reverse of dependencies: the Gateway's Service (its NLB/ELB,
    # whose interfaces sit in the VPC's subnets) must wait for the VPC to be created, so
    # that it is deleted, and Pulumi waits for it, before the VPC.
    plan = offline.run(program, stack_config(REPO, "aws"), stack="aws")
    service = plan.one("kubernetes:core/v1:Service", "istio-gateway-service")
    assert service.inputs["spec"]["type"] == "LoadBalancer"
    assert plan.depends_on(service, plan.one("aws:ec2/vpc:Vpc"))
    for subnet in plan.of_type("aws:ec2/subnet:Subnet"):
        assert plan.depends_on(service, subnet)


@pytest.mark.parametrize("stack", ["aws", "gcp", "azure", "onprem"])
def test_at_most_two_helm_waits_follow_the_node_group(stack):
    # Addons that need only the cluster start together; what was four Helm waits
    # deep (Istio base > istiod > Gateway > EPP > prometheus-adapter, or monitoring CRDs >
    # GPU Operator > DRA driver > prometheus-adapter) is at most two.
    from aicp.cli.plan import build_plan
    from benchmarks.plan import critical_path, helm_waits_after_nodes

    doc = build_plan(stack_config(REPO, stack), stack)
    _, path = critical_path(doc["resources"])
    assert helm_waits_after_nodes(path) <= 2, [r["name"] for r in path]


def test_an_existing_onprem_cluster_gets_a_gateway_address_without_a_load_balancer():
    from aicp.stacks.config import parse
    from aicp.stacks.program import gateway_service_type

    def cfg(stack: str, **gateway):
        raw = stack_config(REPO, stack)
        if gateway:
            raw["aicp:addons"] = {**raw.get("aicp:addons", {}), "gateway": gateway}
        return parse({k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("aicp:")})

    assert gateway_service_type(cfg("onprem")) == "NodePort"
    assert gateway_service_type(cfg("onprem", serviceType="LoadBalancer")) == "LoadBalancer"
    assert gateway_service_type(cfg("aws")) == "LoadBalancer"
