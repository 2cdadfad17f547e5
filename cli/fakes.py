"""What cloud and Kubernetes providers would answer, for planning with no cloud.

``aicp plan`` runs the real program under Pulumi's mocks. A mocked resource echoes its
inputs; the outputs a provider computes (ARNs, endpoints, autoscaling group names) come
from here, recognisably fake. An invoke with no entry here is an error, never a silent
``{}``: an empty answer would turn every field into None and hide a wrong token.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-west-2"
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nplan\n-----END CERTIFICATE-----\n").decode()

Outputs = Callable[[str, dict[str, Any]], dict[str, Any]]


def _arn(service: str, kind: str) -> Outputs:
    return lambda name, inputs: {"arn": f"arn:aws:{service}:{REGION}:{ACCOUNT}:{kind}/{name}"}


def _eks_cluster(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{inputs.get('name', name)}",
        "endpoint": f"https://{name}.gr7.{REGION}.eks.amazonaws.com",
        "certificateAuthority": {"data": FAKE_CA},
        "identities": [{"oidcs": [{
            "issuer": f"https://oidc.eks.{REGION}.amazonaws.com/id/PLAN{name.upper()}"}]}],
        "status": "ACTIVE",
        "name": inputs.get("name", name),
    }


def _eks_node_group(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:nodegroup/{name}",
        "resources": [{"autoscalingGroups": [{"name": f"eks-{name}-asg"}]}],
        "status": "ACTIVE",
    }


# Outputs by resource type token, added to the echoed inputs.
OUTPUTS: dict[str, Outputs] = {
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _eks_node_group,
    "aws:iam/role:Role": lambda name, inputs: {
        "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "name": inputs.get("name", name)},
    "aws:iam/policy:Policy": lambda name, inputs: {
        "arn": f"arn:aws:iam::{ACCOUNT}:policy/{name}"},
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": lambda name, inputs: {
        "arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{str(inputs.get('url', name))[8:]}"},
    "aws:kms/key:Key": lambda name, inputs: {
        "arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{name}", "keyId": f"{name}-key-id"},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda name, inputs: {
        "latestVersion": 1, "arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/{name}"},
}


def _azs(args: dict[str, Any]) -> dict[str, Any]:
    return {"names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
            "zoneIds": ["usw2-az1", "usw2-az2", "usw2-az3"], "id": REGION}


# Invoke results by function token.
INVOKES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _azs,
    "aws:index/getCallerIdentity:getCallerIdentity": lambda args: {
        "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/plan", "userId": "PLAN",
        "id": ACCOUNT},
    "aws:index/getPartition:getPartition": lambda args: {
        "partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws",
        "reverseDnsPrefix": "com.amazonaws"},
}


def outputs_for(type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    extra = OUTPUTS.get(type_token)
    return extra(name, inputs) if extra else {}


class UnknownInvoke(LookupError):
    pass


def invoke(token: str, args: dict[str, Any]) -> dict[str, Any]:
    if token not in INVOKES:
        raise UnknownInvoke(f"no planned answer for invoke {token}; add one to aicp.fakes.INVOKES")
    return INVOKES[token](args)
