"""Every chart and manifest aicp installs, pinned in one place with its upstream source.

Each pin names the upstream release tag it was read at. Where that tag disagrees with a pin
first asked for, the version that works on managed clusters wins and the reason is written
next to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    """A Helm chart at a published version. ``repo`` is an HTTP repo or an ``oci://`` prefix."""

    chart: str
    repo: str
    version: str
    source: str  # where the pin was read: upstream repo and tag
    why: str = ""  # only where the pin departs from what was first asked for

    @property
    def oci(self) -> bool:
        return self.repo.startswith("oci://")

    @property
    def ref(self) -> str:
        """The chart argument Helm takes: ``oci://host/path/chart`` or the bare chart name."""
        return f"{self.repo.rstrip('/')}/{self.chart}" if self.oci else self.chart


@dataclass(frozen=True)
class Manifest:
    """A release manifest applied as-is (CRD bundles)."""

    name: str
    version: str
    url: str
    source: str


CHARTS: dict[str, Chart] = {
    "gpu-operator": Chart(
        "gpu-operator", "https://helm.ngc.nvidia.com/nvidia", "v26.7.0",
        "NVIDIA/gpu-operator@v26.7.0 (published chart version carries the v)"),
    "dra-driver": Chart(
        "dra-driver-nvidia-gpu", "oci://registry.k8s.io/dra-driver-nvidia/charts", "0.4.1",
        "kubernetes-sigs/dra-driver-nvidia-gpu@v0.4.1",
        why="25.12.0 (nvidia-dra-driver-gpu on helm.ngc.nvidia.com) was asked for, but its "
            "controller requires a control-plane node and its kubelet plugin does not "
            "tolerate the GPU taint, so it never runs on EKS/GKE/AKS; the driver moved to "
            "kubernetes-sigs and 0.4.1 fixes both"),
    "kueue": Chart(
        "kueue", "oci://registry.k8s.io/kueue/charts", "0.19.2",
        "kubernetes-sigs/kueue@v0.19.2 charts/kueue"),
    "jobset": Chart(
        "jobset", "oci://registry.k8s.io/jobset/charts", "0.12.0",
        "kubernetes-sigs/jobset@v0.12.0", why="Kueue's JobSet integration needs the JobSet API"),
    # From blob.istio.io: Istio removes its charts from istio-release.storage.googleapis.com
    # in December 2026 and keeps publishing every chart at blob.istio.io/istio-release/
    # charts (istio/istio#61467 "[ACTION REQUIRED] Deprecation of gcr.io/istio-release,
    # istio-release.storage.googleapis.com ..."; istio.io blog 2026 retirement-of-gcp).
    "istio-base": Chart(
        "base", "https://blob.istio.io/istio-release/charts", "1.30.1",
        "istio/istio@1.30.1; GAIE v1.5.0 conformance report: istio 1.30.1 passes 13/13"),
    "istiod": Chart(
        "istiod", "https://blob.istio.io/istio-release/charts", "1.30.1",
        "istio/istio@1.30.1"),
    "endpoint-picker": Chart(
        "llm-d-router-gateway", "oci://ghcr.io/llm-d/charts", "v0.10.0",
        "llm-d/llm-d-router@v0.10.0",
        why="GAIE v1.6.0 no longer ships the endpoint picker or its chart; both moved to "
            "llm-d/llm-d-router"),
    "cluster-autoscaler": Chart(
        "cluster-autoscaler", "https://kubernetes.github.io/autoscaler", "9.59.0",
        "kubernetes/autoscaler cluster-autoscaler-chart-9.59.0"),
    "prometheus-operator-crds": Chart(
        "prometheus-operator-crds", "https://prometheus-community.github.io/helm-charts",
        "31.0.1", "prometheus-community/helm-charts prometheus-operator-crds-31.0.1",
        why="ServiceMonitor CRDs must exist before the GPU Operator reconciles, or it "
            "silently skips the DCGM ServiceMonitor"),
    "kube-prometheus-stack": Chart(
        "kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts",
        "88.5.3", "prometheus-community/helm-charts kube-prometheus-stack-88.5.3"),
    "prometheus-adapter": Chart(
        "prometheus-adapter", "https://prometheus-community.github.io/helm-charts", "5.3.0",
        "prometheus-community/helm-charts prometheus-adapter-5.3.0"),
    "kuberay-operator": Chart(
        "kuberay-operator", "https://ray-project.github.io/kuberay-helm/", "1.7.0",
        "ray-project/kuberay@v1.7.0 helm-chart/kuberay-operator",
        why="the chart cannot enable the operator's webhooks (no cert volume); aicp adds "
            "them without cert-manager: pulumi-tls CA and serving cert, a DeploymentPatch "
            "carrying ENABLE_WEBHOOKS, port 9443 and the cert mount, its own Service and "
            "ValidatingWebhookConfiguration (aicp.addons.kuberay)"),
    # GPU fabrics (aicp.addons.efa_device_plugin, aicp.addons.network_operator).
    "efa-device-plugin": Chart(
        "aws-efa-k8s-device-plugin", "https://aws.github.io/eks-charts", "v0.5.30",
        "aws/eks-charts@bfe91c4 stable/aws-efa-k8s-device-plugin/Chart.yaml (version v0.5.30, "
        "appVersion v0.5.20, the image tag values.yaml defaults to), the newest entry of the "
        "repo's index (gh-pages index.yaml @c7f9ea5); EKS user guide "
        "device-management-efa.adoc: helm install efa eks/aws-efa-k8s-device-plugin"),
    "efa-dra-driver": Chart(
        "aws-dranet", "https://aws.github.io/eks-charts", "1.0.0",
        "aws/eks-charts stable/aws-dranet Chart.yaml 1.0.0 (appVersion v1.2.0-eksbuild.2); EKS "
        "user guide device-management-efa.adoc: helm install aws-dranet eks/aws-dranet"),
    "network-operator": Chart(
        "network-operator", "https://helm.ngc.nvidia.com/nvidia", "v25.10.0",
        "Mellanox/network-operator@v25.10.0 deployment/network-operator; the release "
        "Azure/aks-rdma-infiniband configs/nicclusterpolicy pins its images to"),
}

MANIFESTS: dict[str, Manifest] = {
    "gateway-api": Manifest(
        "gateway-api", "v1.6.1",
        "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.1/"
        "standard-install.yaml",
        "kubernetes-sigs/gateway-api@v1.6.1 standard channel"),
    "inference-extension": Manifest(
        "inference-extension", "v1.6.0",
        "https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/"
        "v1.6.0/v1-manifests.yaml",
        "kubernetes-sigs/gateway-api-inference-extension@v1.6.0 (InferencePool "
        "inference.networking.k8s.io/v1)"),
}

# Images whose tag a chart leaves floating, or that must follow the cluster minor.
IMAGES: dict[str, str] = {
    "endpoint-picker": "v0.10.0",  # the chart's default tag is `main` with pullPolicy Always
    # The GKE COS driver installer DaemonSet's main container (GoogleCloudPlatform/
    # container-engine-accelerators nvidia-driver-installer/cos/daemonset-preloaded.yaml).
    "pause": "registry.k8s.io/pause:3.10",
    # GKE GPUDirect NCCL plugin installers (GoogleCloudPlatform/container-engine-accelerators
    # gpudirect-tcpx/nccl-tcpx-installer.yaml, gpudirect-tcpxo/nccl-tcpxo-installer.yaml,
    # gpudirect-rdma/nccl-rdma-installer.yaml: the installer init container's image).
    # TCPX and TCPXO as pinned @992db81, each paired with the RxDM sidecar image that
    # `aicp verify --performance` runs (verify/images.py): TCPX v3.1.9 with tcpgpudmarxd
    # v2.0.12 (cluster-toolkit@1047080 modules/compute/gke-node-pool/gpu_direct.tf
    # "matching nccl-tcpx-installer version v3.1.9"); TCPXO v1.0.15 with v1.0.21
    # (gpudirect-tcpxo/README.md, release of Jan 9, 2026). Bump each pair together.
    "nccl-tcpx":
        "us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpx/nccl-plugin-gpudirecttcpx-dev:v3.1.9",
    "nccl-tcpxo":
        "us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpxo/nccl-plugin-gpudirecttcpx-dev:v1.0.15",
    "nccl-rdma": "us-docker.pkg.dev/gce-ai-infra/gpudirect-gib/nccl-plugin-gib:v1.0.3",
    # TCPXO's pre-installation step runs on the host through nsenter (same file).
    "nccl-tcpxo-pre": "ubuntu:24.04",
    # GKE's NRI device injector for GPUDirect-TCPX/TCPXO sidecars, by the digest upstream
    # pins (GoogleCloudPlatform/container-engine-accelerators@992db81
    # nri_device_injector/nri-device-injector.yaml; cluster-toolkit@1047080
    # examples/gke-a3-megagpu/nri-device-injector.yaml pins the same).
    "nri-device-injector":
        "gcr.io/gke-release/nri-device-injector"
        "@sha256:6e79483d52abdc28454bf186320b10a56b0f117a10e8d65d5c74dbb821a76970",
    # The gIB installer's log_martians sysctl step (cluster-toolkit@1047080
    # examples/gke-a3-ultragpu/nccl-installer.yaml.tftpl runs it in ``alpine:latest``;
    # pinned here to a release tag so the installer cannot change under a cluster).
    "nccl-rdma-sysctl": "alpine:3.22",
    # NVIDIA Network Operator's NicClusterPolicy on AKS InfiniBand (Azure/aks-rdma-infiniband
    # configs/nicclusterpolicy/base/nic.yaml and rdma-shared-device-plugin/rdma.yaml).
    "doca-driver": "doca3.2.0-25.10-1.2.8.0-2",
    "rdma-shared-device-plugin": "network-operator-v25.10.0",
}

# Kubernetes minors aicp builds clusters for. DRA's resource.k8s.io/v1 is GA from 1.34.
# cluster-autoscaler must run the minor of the cluster it scales.
KUBERNETES: dict[str, dict[str, str]] = {
    "1.34": {"cluster-autoscaler": "v1.34.5"},
    "1.35": {"cluster-autoscaler": "v1.35.2"},
    "1.36": {"cluster-autoscaler": "v1.36.1"},
    "1.37": {},  # no cluster-autoscaler pin: only EKS runs it, and EKS has no 1.37 (below)
}
DEFAULT_KUBERNETES = "1.35"

# The CNCF AI Conformance checklist a cluster of each minor is verified against.
CHECKLIST_FOR_MINOR = {minor: minor for minor in KUBERNETES}

# k3s (on-prem target, k3s mode): one patch per supported Kubernetes minor, newest on each
# line as of 2026-09 (k3s-io/k3s tags; e.g. "[release-1.36] Update to v1.36.4-k3s1",
# k3s-io/k3s#14545). The k3s minor follows aicp:kubernetesVersion.
K3S_VERSIONS: dict[str, str] = {
    "1.34": "v1.34.11+k3s1",
    "1.35": "v1.35.8+k3s1",
    "1.36": "v1.36.4+k3s1",
    # k3s-io/k3s release v1.37.0+k3s1 ("This release updates Kubernetes to v1.37.0"),
    # 2026-09; install.sh below is version-agnostic.
    "1.37": "v1.37.0+k3s1",
}
# install.sh is version-agnostic (INSTALL_K3S_VERSION picks the release); pinned by tag, not
# get.k3s.io, so the script cannot change under us. It verifies the k3s binary against the
# release's sha256sum-<arch>.txt itself. The checksum is of this exact file, identical at
# tags v1.36.1/v1.36.2/v1.36.4 as recorded by three unrelated public repositories (not
# recomputed here: no network); a mismatch makes the install stop before anything runs.
K3S_INSTALLER_URL = "https://raw.githubusercontent.com/k3s-io/k3s/v1.36.4%2Bk3s1/install.sh"
K3S_INSTALLER_SHA256 = "46177d4c99440b4c0311b67233823a8e8a2fc09693f6c89af1a7161e152fbfad"
K3S_SOURCE = "k3s-io/k3s@v1.36.4+k3s1 install.sh; k3s-io/docs release-notes v1.3x.X"


# --- Kubernetes 1.37 on the clouds (issue #25) -------------------------------------------
# Kubernetes 1.37.0 was released 2026-08-26 (https://kubernetes.io/releases/1.37/).
# Minors a cloud does not offer yet, with the one line `aicp plan` says when one is asked for.
NOT_OFFERED: dict[str, dict[str, str]] = {
    # The EKS user guide's version pages list 1.36 as the newest minor (awsdocs/
    # amazon-eks-user-guide latest/ug/versioning/kubernetes-versions-standard, "Kubernetes
    # 1.36 is now available in Amazon EKS"; nothing for 1.37). EKS Distro has 1.37
    # (aws/eks-distro v1-37-eks-2, 2026-09-02), but that is not the managed service.
    # Searched again 2026-12 (issue #25): the newest EKS version page is still "Kubernetes
    # 1.36 is now available in Amazon EKS" (kubernetes-versions-standard.html#kubernetes-1-36,
    # 2026-06-02); aws/containers-roadmap#2864 "[EKS] [request]: Support for Kubernetes 1.37"
    # (opened 2026-08-28) is open with no release; eksctl, the EKS AMI (no
    # amazon-eks-node-al2023-*-1.37 image) and the AWS SDKs name no 1.37 either. So no
    # cluster-autoscaler v1.37.x pin is needed yet, and the aws example stays at 1.35.
    "aws": {"1.37": "Amazon EKS does not offer Kubernetes 1.37 yet (its Kubernetes versions "
                    "page lists 1.36 as the newest); use \"1.36\""},
}
# GKE release channels that offer a minor, where not every channel does. New minors reach
# the Rapid channel first and Regular 2-3 months later
# (https://cloud.google.com/kubernetes-engine/docs/concepts/release-channels); GKE's own
# v1.37 AI-conformance submission was built on Rapid (cncf/k8s-ai-conformance v1.37/gke/).
GKE_CHANNELS: dict[str, tuple[str, ...]] = {"1.37": ("RAPID",)}

# gVisor on the nodes aicp boots itself (EKS sandbox group): a release of
# google/gvisor's release store (https://storage.googleapis.com/gvisor/releases/release/
# <release>/<arch>/gvisor.tar.bz2 with its .sha512; https://gvisor.dev/docs/user_guide/
# install/). 20260928.0 (published 2026-09-30) is the newest release at least two weeks
# old that other projects pinned and ran on containerd 2 before this one.
GVISOR_RELEASE = "20260928.0"
# The gVisor installer DaemonSet on existing on-prem clusters (aicp.addons.sandbox) runs its
# script in the host's namespaces through nsenter, which Ubuntu's base image carries
# (util-linux, an essential package); the same image the GKE TCPXO installer enters the
# host with (IMAGES["nccl-tcpxo-pre"]). A tag, not a digest: no second public source for
# one was found. Its pause container is IMAGES["pause"].
IMAGES["gvisor-installer"] = "ubuntu:24.04"
# Kata Containers on existing on-prem clusters whose sandbox nodes have KVM (aicp:onprem.
# sandbox.runtime kata): kata-deploy's Helm chart, published as OCI (NVIDIA Confidential
# Containers docs, quickstart: helm install kata-deploy oci://ghcr.io/kata-containers/
# kata-deploy-charts/kata-deploy). 4.1.0 is the newest release (kata-containers/
# kata-containers tag 4.1.0, 2026-08-21; its Chart.yaml version "4.1.0").
CHARTS["kata-deploy"] = Chart(
    "kata-deploy", "oci://ghcr.io/kata-containers/kata-deploy-charts", "4.1.0",
    "kata-containers/kata-containers@4.1.0 tools/packaging/kata-deploy/helm-chart/kata-deploy",
    why="workload_sandboxing with Kata on existing on-prem clusters (issue #25)")

# disaggregated_inference: LeaderWorkerSet for the prefill and decode model servers
# (llm-d's guides deploy each phase as a LeaderWorkerSet). Published chart
# oci://registry.k8s.io/lws/charts/lws, the version aicp's add-on research recommends
# (kubernetes-sigs/lws@v0.10.0 charts/lws).
CHARTS["leaderworkerset"] = Chart(
    "lws", "oci://registry.k8s.io/lws/charts", "0.10.0",
    "kubernetes-sigs/lws@v0.10.0 charts/lws",
    why="disaggregated_inference (issue #25): each phase a separately scalable workload")

# Azure Managed Lustre's CSI driver (issue #20, AKS parallel file system): the released OCI
# chart on MCR, "Install only versions listed above" (kubernetes-sigs/azurelustre-csi-driver
# charts/README.md, "Released chart versions": 0.6.0, driver image family v0.6.0; installed
# as release "azurelustre" in kube-system; learn.microsoft.com/azure/aks/
# azure-managed-lustre-install: "Use Helm to install the driver").
CHARTS["azurelustre-csi"] = Chart(
    "azurelustre-csi-driver", "oci://mcr.microsoft.com/microsoft.azuremanagedlustre", "0.6.0",
    "kubernetes-sigs/azurelustre-csi-driver charts/README.md (released chart 0.6.0)",
    why="Azure Managed Lustre behind aicp:storage.parallelFs on AKS (issue #20)")

# Istio for Kubernetes 1.37 (issue #25). Istio 1.30 supports Kubernetes 1.32 to 1.36 only
# (istio/istio.io news/releases/1.30.x/announcing-1.30: "Istio 1.30.0 is officially supported
# on Kubernetes versions 1.32 to 1.36"; istio/istio.io#17347 added the 1.30 row of
# data/compatibility/supportStatus.yml with that range), so a 1.37 cluster gets 1.31: its row
# of supportStatus.yml lists k8sVersions 1.32-1.37 since istio/istio.io#17638 ("update
# support k8s versions", 2026-09-30; its announcement, dated before, says 1.32 to 1.36).
# 1.31.1 is the newest 1.31 patch (istio/istio.io news/releases/1.31.x/announcing-1.31.1,
# 2026-09-21). Istio 1.31 publishes no charts to istio-release.storage.googleapis.com: they
# are at oci://ghcr.io/istio/release/charts (istio.io blog 2026 "ACTION REQUIRED FOR GOOGLE
# CONTAINER REGISTRY USERS...": "Istio 1.31 will not have Helm charts ... published to ...
# https://istio-release.storage.googleapis.com/charts"). The values aicp sets exist there:
# base ``defaultRevision`` and istiod ``pilot.env`` (istio/istio@1.31.0-rc.0
# manifests/charts/base/values.yaml, manifests/charts/istio-control/istio-discovery/
# values.yaml; ENABLE_GATEWAY_API_INFERENCE_EXTENSION in pilot/pkg/features/experimental.go).
ISTIO_FOR_MINOR: dict[str, tuple[str, str]] = {"1.37": ("istio-base-1.31", "istiod-1.31")}
# Where istiod and the proxies it injects pull their images (the istiod chart's
# ``global.hub``): Docker Hub, where Istio publishes releases and keeps them after its
# GCP-hosted registries go in December 2026 (istio/istio#61467).
ISTIO_HUB = "docker.io/istio"
CHARTS["istio-base-1.31"] = Chart(
    "base", "oci://ghcr.io/istio/release/charts", "1.31.1",
    "istio/istio 1.31.1 (istio.io announcing-1.31.1); supportStatus.yml 1.31: Kubernetes "
    "1.32-1.37", why="Istio 1.30 is not supported on Kubernetes 1.37 (issue #25)")
CHARTS["istiod-1.31"] = Chart(
    "istiod", "oci://ghcr.io/istio/release/charts", "1.31.1",
    "istio/istio 1.31.1 (istio.io announcing-1.31.1)",
    why="Istio 1.30 is not supported on Kubernetes 1.37 (issue #25)")


def istio_charts(minor: str) -> tuple[Chart, Chart]:
    """Istio's base and istiod charts for a cluster of Kubernetes ``minor``."""
    base, istiod = ISTIO_FOR_MINOR.get(minor, ("istio-base", "istiod"))
    return CHARTS[base], CHARTS[istiod]
