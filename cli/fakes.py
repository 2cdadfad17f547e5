"""What cloud and Kubernetes providers would answer, for planning with no cloud.

``aicp plan`` runs the real program under Pulumi's mocks. A mocked resource echoes its
inputs; the outputs a provider computes (ARNs, endpoints, autoscaling group names) come
from here, recognisably fake. An invoke with no entry here is an error, never a silent
``{}``: an empty answer would turn every field into None and hide a wrong token.

One section per target holds all of its fakes: what its component's resources compute,
its invokes, and the lookups its preflight makes; a new target adds its own section.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

FAKE_CA = base64.b64encode(
    b"-----BEGIN CERTIFICATE-----\nplan\n-----END CERTIFICATE-----\n").decode()

Outputs = Callable[[str, dict[str, Any]], dict[str, Any]]


# Outputs by resource type token, added to the echoed inputs; one section per target adds
# its component's below.
OUTPUTS: dict[str, Outputs] = {}
# Invoke results by function token.
INVOKES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
# The read-only lookups a target's preflight makes (stacks/targets/<target>.py), answered
# from the accelerator catalog.
PREFLIGHT_TOKENS: set[str] = set()

# Canned: every machine type is offered in every zone asked about, carries the catalog's GPUs,
# and the quota is ample. Tests swap single entries to see each failure.
CANNED_VCPUS = 192  # one figure for every type: the checks compare, they do not price
CANNED_QUOTA = 100_000.0


def _catalog_gpus(target: str, machine: str) -> int:
    from ..components.accelerators import OFFERINGS

    return next((o.gpus for o in OFFERINGS if o.target == target and o.machine_type == machine),
                0)


# --- AWS (pulumi-aws: EKS) --------------------------------------------------------------
ACCOUNT = "123456789012"
REGION = "us-west-2"

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
        # What EKS adds to the VPC config: the VPC of the subnets, the cluster security group.
        "vpcConfig": {**(inputs.get("vpcConfig") or {}), "vpcId": "vpc-0plan",
                      "clusterSecurityGroupId": f"sg-0plan{name.replace('-', '')[:8]}"},
    }


def _eks_node_group(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "arn": f"arn:aws:eks:{REGION}:{ACCOUNT}:nodegroup/{name}",
        "resources": [{"autoscalingGroups": [{"name": f"eks-{name}-asg"}]}],
        "status": "ACTIVE",
    }


OUTPUTS.update({
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
    # S3 appends a unique suffix to a bucket_prefix; "plan" stands in for it.
    "aws:s3/bucket:Bucket": lambda name, inputs: {
        "bucket": inputs.get("bucket") or f"{inputs.get('bucketPrefix', name)}plan",
        "arn": f"arn:aws:s3:::{inputs.get('bucket') or inputs.get('bucketPrefix', name)}plan"},
})


def _azs(args: dict[str, Any]) -> dict[str, Any]:
    return {"names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
            "zoneIds": ["usw2-az1", "usw2-az2", "usw2-az3"], "id": REGION}


INVOKES.update({
    "aws:index/getAvailabilityZones:getAvailabilityZones": _azs,
    "aws:index/getCallerIdentity:getCallerIdentity": lambda args: {
        "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/plan", "userId": "PLAN",
        "id": ACCOUNT},
    "aws:index/getPartition:getPartition": lambda args: {
        "partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws",
        "reverseDnsPrefix": "com.amazonaws"},
})


# Preflight: offerings, the instance type, the EC2 quota.
def _ec2_offerings(args: dict[str, Any]) -> dict[str, Any]:
    filters = {f["name"]: f["values"] for f in args.get("filters") or []}
    types = filters.get("instance-type", [])
    zones = filters.get("location", [])
    pairs = [(t, z) for t in types for z in zones]
    return {"id": REGION, "filters": args.get("filters"), "locationType": args.get(
        "locationType"), "instanceTypes": [t for t, _ in pairs],
        "locations": [z for _, z in pairs], "locationTypes": ["availability-zone"] * len(pairs),
        "region": args.get("region", REGION)}


def _ec2_instance_type(args: dict[str, Any]) -> dict[str, Any]:
    machine = args.get("instanceType", "")
    gpus = _catalog_gpus("aws", machine)
    return {"id": machine, "instanceType": machine, "defaultVcpus": CANNED_VCPUS,
            "region": args.get("region", REGION),
            "gpuses": [{"count": gpus, "manufacturer": "NVIDIA", "memorySize": 0,
                        "name": "canned"}] if gpus else []}


def _service_quota(args: dict[str, Any]) -> dict[str, Any]:
    code = args.get("quotaCode", "")
    return {"id": code, "quotaCode": code, "quotaName": code, "serviceCode": "ec2",
            "serviceName": "Amazon Elastic Compute Cloud (Amazon EC2)", "value": CANNED_QUOTA,
            "defaultValue": 0.0, "adjustable": True, "globalQuota": False,
            "arn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:ec2/{code}",
            "region": args.get("region", REGION), "usageMetrics": []}


AWS_PREFLIGHT = {
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": _ec2_offerings,
    "aws:ec2/getInstanceType:getInstanceType": _ec2_instance_type,
    "aws:servicequotas/getServiceQuota:getServiceQuota": _service_quota,
}
INVOKES.update(AWS_PREFLIGHT)
PREFLIGHT_TOKENS.update(AWS_PREFLIGHT)


# --- GCP (pulumi-gcp: GKE) -----------------------------------------------------------------
GCP_PROJECT = "plan-project"


def _gke_cluster(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    cluster = inputs.get("name", name)
    location = inputs.get("location", "us-central1")
    return {
        "name": cluster,
        "endpoint": "203.0.113.10",  # TEST-NET-3: recognisably not a real control plane
        "masterAuth": {**inputs.get("masterAuth", {}), "clusterCaCertificate": FAKE_CA},
        "selfLink": f"https://container.googleapis.com/v1/projects/{GCP_PROJECT}/locations/"
                    f"{location}/clusters/{cluster}",
    }


def _gcp_self_link(kind: str) -> Outputs:
    def outputs(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        scope = f"regions/{inputs['region']}" if "region" in inputs else "global"
        return {"selfLink": f"https://www.googleapis.com/compute/v1/projects/{GCP_PROJECT}/"
                            f"{scope}/{kind}/{inputs.get('name', name)}",
                "name": inputs.get("name", name)}
    return outputs


def _gcp_service_account(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    email = f"{inputs.get('accountId', name)}@{GCP_PROJECT}.iam.gserviceaccount.com"
    return {"email": email, "member": f"serviceAccount:{email}",
            "name": f"projects/{GCP_PROJECT}/serviceAccounts/{email}"}


def _gcp_subnetwork(args: dict[str, Any]) -> dict[str, Any]:
    link = str(args.get("selfLink") or args.get("name") or "plan-subnet")
    return {"selfLink": link, "name": link.rsplit("/", 1)[-1],
            "network": f"https://www.googleapis.com/compute/v1/projects/{GCP_PROJECT}/global/"
                       "networks/plan-network",
            "region": args.get("region", "us-central1"), "project": GCP_PROJECT,
            "id": link, "ipCidrRange": "10.0.0.0/20", "secondaryIpRanges": []}


INVOKES.update({"gcp:compute/getSubnetwork:getSubnetwork": _gcp_subnetwork})
# The project's number, for Workload Identity principal identifiers (storage, #20).
INVOKES.update({"gcp:organizations/getProject:getProject": lambda args: {
    "projectId": args.get("projectId", GCP_PROJECT), "number": "123456789012",
    "name": args.get("projectId", GCP_PROJECT)}})

OUTPUTS.update({
    "gcp:container/cluster:Cluster": _gke_cluster,
    "gcp:compute/network:Network": _gcp_self_link("networks"),
    "gcp:compute/subnetwork:Subnetwork": _gcp_self_link("subnetworks"),
    "gcp:compute/router:Router": _gcp_self_link("routers"),
    "gcp:serviceaccount/account:Account": _gcp_service_account,
})


# Preflight: the machine type in each zone.
def _gce_machine_types(args: dict[str, Any]) -> dict[str, Any]:
    machine = str(args.get("filter", "")).removeprefix("name = ").strip()
    gpus = _catalog_gpus("gcp", machine)
    zone = args.get("zone", "us-central1-a")
    return {"id": f"{zone}/{machine}", "filter": args.get("filter"), "zone": zone,
            "project": args.get("project", GCP_PROJECT), "machineTypes": [{
                "name": machine, "description": "canned", "guestCpus": CANNED_VCPUS,
                "memoryMb": 0, "architecture": "X86_64", "isSharedCpus": False,
                "maximumPersistentDisks": 0, "maximumPersistentDisksSizeGb": 0,
                "selfLink": f"zones/{zone}/machineTypes/{machine}", "bundledLocalSsds": [],
                "deprecateds": [],
                "accelerators": [{"guestAcceleratorCount": gpus,
                                  "guestAcceleratorType": "canned"}] if gpus else []}]}


GCP_PREFLIGHT = {"gcp:compute/getMachineTypes:getMachineTypes": _gce_machine_types}
INVOKES.update(GCP_PREFLIGHT)
PREFLIGHT_TOKENS.update(GCP_PREFLIGHT)


# --- Azure (azure-native) ---------------------------------------------------------------
AZURE_SUBSCRIPTION = "00000000-0000-0000-0000-00000000plan"
AZURE_TENANT = "11111111-1111-1111-1111-11111111plan"


def _aks_cluster(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    cluster = inputs.get("resourceName", name)
    location = inputs.get("location", "eastus2")
    return {
        "name": cluster,
        "fqdn": f"{cluster}-plan.hcp.{location}.azmk8s.io",
        "identity": _aks_identity(cluster, inputs.get("identity") or {}),
        "oidcIssuerProfile": {**inputs.get("oidcIssuerProfile", {}),
                              "issuerURL": f"https://{location}.oic.prod-aks.azure.com/"
                                           f"{AZURE_TENANT}/{cluster}/"},
        "nodeResourceGroup": f"MC_{inputs.get('resourceGroupName')}_{cluster}_{location}",
        "provisioningState": "Succeeded",
    }


def _aks_identity(cluster: str, identity: dict[str, Any]) -> dict[str, Any]:
    # ARM answers user-assigned identities as a map keyed by identity id.
    users = identity.get("userAssignedIdentities") or []
    out = {"type": identity.get("type", "SystemAssigned"), "tenantId": AZURE_TENANT}
    if users:
        out["userAssignedIdentities"] = {
            uid: {"principalId": f"{cluster}-principal", "clientId": f"{cluster}-client"}
            for uid in users}
    else:
        out["principalId"] = f"{cluster}-principal"
    return out


def _aks_user_credentials(args: dict[str, Any]) -> dict[str, Any]:
    cluster = args.get("resourceName", "plan")
    config = (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: {cluster}\n  cluster:\n"
        f"    server: https://{cluster}-plan.hcp.eastus2.azmk8s.io:443\n"
        f"    certificate-authority-data: {FAKE_CA}\n"
        f"contexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n"
        f"    user: clusterUser_{cluster}\n"
        f"current-context: {cluster}\n"
        f"users:\n- name: clusterUser_{cluster}\n  user:\n    token: plan\n")
    return {"kubeconfigs": [{"name": "clusterUser",
                             "value": base64.b64encode(config.encode()).decode()}]}


OUTPUTS.update({
    "azure-native:resources:ResourceGroup": lambda name, inputs: {
        "name": inputs.get("resourceGroupName", name)},
    "azure-native:network:VirtualNetwork": lambda name, inputs: {
        "name": inputs.get("virtualNetworkName", name)},
    "azure-native:network:Subnet": lambda name, inputs: {
        "name": inputs.get("subnetName", name)},
    "azure-native:managedidentity:UserAssignedIdentity": lambda name, inputs: {
        "name": inputs.get("resourceName", name), "principalId": f"{name}-principal",
        "clientId": f"{name}-client", "tenantId": AZURE_TENANT},
    "azure-native:containerservice:ManagedCluster": _aks_cluster,
    "azure-native:containerservice:AgentPool": lambda name, inputs: {
        "name": inputs.get("agentPoolName", name), "provisioningState": "Succeeded"},
    # Storage (#20): the model storage account and its container, by the names asked.
    "azure-native:storage:StorageAccount": lambda name, inputs: {
        "name": inputs.get("accountName", name)},
    "azure-native:storage:BlobContainer": lambda name, inputs: {
        "name": inputs.get("containerName", name)},
    # Azure Managed Lustre (#20): ARM's clientInfo carries the MGS address the CSI driver
    # mounts (Microsoft.StorageCache amlFilesystems, AmlFilesystemClientInfo.mgsAddress).
    "azure-native:storagecache:AmlFilesystem": lambda name, inputs: {
        "name": inputs.get("amlFilesystemName", name),
        "clientInfo": {"mgsAddress": f"{name}-mgs"}},
})

INVOKES.update({
    "azure-native:authorization:getClientConfig": lambda args: {
        "clientId": "plan-client", "objectId": "plan-object",
        "subscriptionId": AZURE_SUBSCRIPTION, "tenantId": AZURE_TENANT},
    "azure-native:containerservice:listManagedClusterUserCredentials": _aks_user_credentials,
})
# Preflight (stacks/targets/azure.py infiniband_feature): a subscription that never
# registered the AKS InfiniBand preview feature.
AZURE_PREFLIGHT = {
    "azure-native:features:getSubscriptionFeatureRegistration": lambda args: {
        "id": f"/subscriptions/{AZURE_SUBSCRIPTION}/providers/Microsoft.Features/"
              f"featureProviders/{args.get('providerNamespace')}/"
              f"subscriptionFeatureRegistrations/{args.get('featureName')}",
        "name": args.get("featureName"), "type": "Microsoft.Features/featureProviders/"
        "subscriptionFeatureRegistrations",
        "properties": {"featureName": args.get("featureName"),
                       "providerNamespace": args.get("providerNamespace"),
                       "state": "NotRegistered"}},
}
INVOKES.update(AZURE_PREFLIGHT)
PREFLIGHT_TOKENS.update(AZURE_PREFLIGHT)


# --- on-prem (pulumi-command: k3s over SSH) --------------------------------
def _remote_command(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What a host would print: the join token or k3s's kubeconfig for the reader commands."""
    create = str(inputs.get("create", ""))
    if "/var/lib/rancher/k3s/server/node-token" in create:
        return {"stdout": f"K10plan::server:{name}\n", "stderr": ""}
    if "/etc/rancher/k3s/k3s.yaml" in create:
        return {"stdout": (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: default\n  cluster:\n    server: https://127.0.0.1:6443\n"
            f"    certificate-authority-data: {FAKE_CA}\n"
            "contexts:\n- name: default\n  context:\n    cluster: default\n    user: default\n"
            "current-context: default\n"
            "users:\n- name: default\n  user:\n    token: plan\n"), "stderr": ""}
    return {"stdout": "", "stderr": ""}


OUTPUTS.update({"command:remote:Command": _remote_command})


# --- TLS (pulumi-tls: webhook CAs and serving certificates) --------------------------------
def _pem(kind: str, name: str) -> str:
    return f"-----BEGIN {kind}-----\nplan-{name}\n-----END {kind}-----\n"


OUTPUTS.update({
    "tls:index/privateKey:PrivateKey": lambda name, inputs: {
        "privateKeyPem": _pem("PRIVATE KEY", name), "publicKeyPem": _pem("PUBLIC KEY", name)},
    "tls:index/selfSignedCert:SelfSignedCert": lambda name, inputs: {
        "certPem": _pem("CERTIFICATE", name)},
    "tls:index/certRequest:CertRequest": lambda name, inputs: {
        "certRequestPem": _pem("CERTIFICATE REQUEST", name)},
    "tls:index/locallySignedCert:LocallySignedCert": lambda name, inputs: {
        "certPem": _pem("CERTIFICATE", name)},
})


def outputs_for(type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    extra = OUTPUTS.get(type_token)
    return extra(name, inputs) if extra else {}


class UnknownInvoke(LookupError):
    pass


def invoke(token: str, args: dict[str, Any]) -> dict[str, Any]:
    if token not in INVOKES:
        raise UnknownInvoke(f"no planned answer for invoke {token}; add one to "
                            "cli/fakes.py INVOKES")
    return INVOKES[token](args)
