"""The images probes run, pinned by digest, and their rewriting to a mirror registry.

Every entry is the multi-arch index digest of its upstream tag (amd64 and arm64 both in the
index, so no probe pins a pod to one architecture), and its comment names two independent
public sources for that digest. The digests were checked when this catalog was written, not
re-resolved here: there is no registry access from the build. Bump a tag and its digest
together, and re-check both properties with a registry client:

    crane digest docker.io/library/busybox:1.36.1          # the index digest pinned here
    crane manifest docker.io/library/busybox:1.36.1 | jq '.manifests[].platform'
                                                             # amd64 and arm64 both listed
"""

from __future__ import annotations

import re

CATALOG: dict[str, str] = {
    # nvidia-smi -L lists the GPUs a container can see (secure_accelerator_access, DRA).
    # Sources: a ``docker pull`` log printing "Digest: sha256:0f6b..." for the tag, and a
    # run report naming it the tag's repository digest (public GitHub files).
    "cuda": "docker.io/nvidia/cuda:12.4.1-base-ubuntu22.04"
            "@sha256:0f6bfcbf267e65123bcc2287e2153dedfc0f24772fb5ce84afe16ac4b2fada95",
    # A real CUDA compute load for pod_autoscaling: the CUDA samples' n-body (``nbody`` on the
    # PATH). Digest of the ``nbody`` tag, two sources: NVIDIA's EFLOW User's Guide s1.5
    # (docs.nvidia.com/cuda/eflow-users-guide, ``docker pull`` prints "Digest: sha256:5926...")
    # and a kubelet-reported Image ID of a pod running the tag (``kubectl describe pod``
    # capture of 2026-01-09 in a public GitHub markdown file). Caveat: the tag's arm64 entry
    # is reported to carry an x86-64 binary (NVIDIA/NemoClaw, "cuda-sample:nbody packs an
    # x86-64 binary in its arm64 tag", #4565), so pod_autoscaling prefers amd64 GPU nodes and,
    # on an arm64 node where the load cannot start, says so in its ERROR.
    "cuda-nbody": "nvcr.io/nvidia/k8s/cuda-sample:nbody"
                  "@sha256:59261e419d6d48a772aad5bb213f9f1588fcdb042b115ceb7166c89a51f03363",
    # sleep/sh for pods that only need to be scheduled (gang scheduling, autoscaling) or
    # only need to run (robust_controller's Ray head). Sources: a ``crane digest`` capture
    # after ``crane copy busybox:1.36`` in a public ops log, a kubelet-reported Image ID
    # ``docker.io/library/busybox@sha256:73aa...`` of a containerd pod running
    # ``busybox:1.36`` (``kubectl describe pod`` capture), and public scripts pinning
    # ``docker.io/library/busybox:1.36.1@sha256:73aa...``.
    "busybox": "docker.io/library/busybox:1.36.1"
               "@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662",
    # HTTP requests from inside the cluster (metrics endpoints, Gateway routes). Sources: a
    # ``docker images --digests`` listing of ``curlimages/curl:8.11.1`` and public scripts
    # pinning ``curlimages/curl:8.11.1@sha256:c1fe...``.
    "curl": "docker.io/curlimages/curl:8.11.1"
            "@sha256:c1fe1679c34d9784c1b0d1e5f62ac0a79fca01fb6377cdd33e90473c6f9f9a69",
}

_MIRROR = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$")


class MirrorError(ValueError):
    """A ``--registry-mirror`` that is not ``host[:port][/path]``."""


def mirrored(image: str, mirror: str | None) -> str:
    """``image`` served from ``mirror``: the registry host replaced, path and digest kept.

    ``docker.io/library/busybox:1.36.1@sha256:…`` with ``registry.local:5000/hub`` becomes
    ``registry.local:5000/hub/library/busybox:1.36.1@sha256:…``; the digest guarantees the
    mirror serves the same bytes.
    """
    if not mirror:
        return image
    mirror = mirror.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not _MIRROR.match(mirror):
        raise MirrorError(f"--registry-mirror {mirror!r} is not host[:port][/path], "
                          "e.g. registry.local:5000/dockerhub")
    _, _, path = image.partition("/")
    return f"{mirror}/{path}"


def catalog(mirror: str | None = None) -> dict[str, str]:
    """Every probe image, rewritten to ``mirror`` when one is given."""
    return {name: mirrored(image, mirror) for name, image in CATALOG.items()}


# Images of ``aicp verify --performance`` only (``verify/performance``): kept apart from
# CATALOG so a run without the flag prints and pulls exactly what it did before. Pinned as
# CATALOG is, by the tag's multi-arch index digest with two independent public sources
# for it, where two could be found; the others are pinned by tag only, saying which
# sources are missing (no digest is ever guessed). For those the run's evidence records the
# image ID each kubelet reports; pin them (``crane digest <ref>``) once two sources agree.
PERFORMANCE: dict[str, str] = {
    # dcgmi and nv-hostengine: the standalone DCGM image NVIDIA/gpu-operator v26.7.0 pins
    # (deployments/gpu-operator/values.yaml ``dcgm.repository``/``image``/``version``).
    # Tag only: no public file pins this tag's digest (the operator's values and NVIDIA/
    # aicr name the tag alone; the public files naming ``dcgm:4.6.0-1-ubuntu24.04@sha256``
    # carry a placeholder digest), so there is not one source, let alone two.
    "dcgm": "nvcr.io/nvidia/cloud-native/dcgm:4.6.0-1-ubuntu24.04",
    # PyTorch for the matmul and copy bench; it ships nccl-tests' ``all_reduce_perf_mpi``,
    # OpenMPI and sshd, which NVIDIA/aicr's GKE NCCL runtime relies on
    # (validators/performance/testdata/h100/gke/runtime.yaml). The tag's index digest, two
    # independent public sources: a runtime contract pinning ``CONTAINER_IMAGE =
    # nvcr.io/nvidia/pytorch:25.06-py3`` with ``CONTAINER_INDEX_DIGEST = sha256:025d...``
    # beside the amd64 manifest's own digest (sha256:3cb18e2c...), and an acceptance
    # runbook pinning ``nvcr.io/nvidia/pytorch:25.06-py3@sha256:025d...`` (public GitHub
    # files; Dockerfiles elsewhere pin the same digest bare). NGC publishes the 25.06
    # release for amd64 and arm64 (sbsa), whose arm64 manifest another public build pins
    # as sha256:6d46eb..., so the index carries both.
    "pytorch": "nvcr.io/nvidia/pytorch:25.06-py3"
               "@sha256:025d9b102b5436d4af8af58f12c6a46b7e5d16f19543b1d2cc4446bf2650b4f1",
    # nccl-tests with the EFA installer and aws-ofi-nccl for EFA pools: the image aicr's EKS
    # runtime runs (validators/performance/testdata/h100/eks/runtime.yaml). Tag only: no
    # public file pins this tag's digest (aicr, awslabs/ai-on-eks-style runbooks and
    # Dockerfiles name the tag alone). The only published digest of this repository
    # (sha256:a5390d3f..., tag cuda13.0.2-efa1.48.0-...-testsv2.18.3, from one project's
    # files) is not equally right: CUDA 13 needs a newer driver than aicr's CUDA 12.8 run.
    "nccl-efa": "public.ecr.aws/hpc-cloud/nccl-tests:"
                "cuda12.8.1-efa1.43.2-ofiv1.16.3-ncclv2.27.7-1-testsv2.16.9",
    # GKE GPUDirect receive-datapath daemons (RxDM), the sidecar of a fabric worker on an A3
    # Mega / A3 High pool (verify/performance/gpudirect.py). Each must match the NCCL plugin
    # installer on the nodes: v1.0.21 pairs with nccl-tcpxo v1.0.15 (GoogleCloudPlatform/
    # container-engine-accelerators@992db81 gpudirect-tcpxo/README.md, Jan 9, 2026 release;
    # gpudirect-tcpxo/nccl-test-latest.yaml), v2.0.12 with nccl-tcpx v3.1.9
    # (gpudirect-tcpx/nccl-test-latest.yaml; cluster-toolkit@1047080 modules/compute/
    # gke-node-pool/gpu_direct.tf), the installers aicp pins. On a cluster whose installer
    # runs another plugin release the run swaps in that release's pair
    # (verify/performance/gpudirect.py RXDM_FOR_PLUGIN).
    "tcpxo-daemon": "us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpxo/tcpgpudmarxd-dev:v1.0.21",
    "tcpx-daemon": "us-docker.pkg.dev/gce-ai-infra/gpudirect-tcpx/tcpgpudmarxd-dev:v2.0.12",
}


def performance_catalog(mirror: str | None = None) -> dict[str, str]:
    """The performance run's images, rewritten to ``mirror`` when one is given."""
    return {name: mirrored(image, mirror) for name, image in PERFORMANCE.items()}
# The working group's test suite, run by ``aicp verify --wg-suite``: kubernetes-sigs/ai-conformance,
# Go package ``./test``. It has no release tags, so a commit is pinned. 6c1b76b8 is the commit
# whose ``test/main_test.go`` groups the suite's flags (global, ``autoscaler-``, ``gang-``,
# ``sandbox-``) and whose ``test/e2e/run-e2e-gcp.sh`` runs the suite in upstream CI with
# ``-accelerator-type -allocation-mode -gang-scheduler-namespace -gang-job-labels
# -sandbox-runtime-class``, the flags aicp derives. Bump it only after reading the new
# commit's flags (``go test ./test -args -help``).
WG_SUITE = {
    "repository": "https://github.com/kubernetes-sigs/ai-conformance",
    "commit": "6c1b76b89251efef18a4d18cb438fa6fdca9e77a",
    "package": "./test",
    # The image ``--wg-suite-mode job`` runs the suite in: the official Go image. Go 1.25.9
    # on Debian bookworm (docker-library/golang 1.25/bookworm/Dockerfile at 005ca412:
    # GOLANG_VERSION 1.25.9, FROM buildpack-deps:bookworm-scm, so git is in it;
    # GOTOOLCHAIN=local); the suite's go.mod asks for go 1.25.0. Pinned by tag only: no
    # digest of it was confirmed from two public sources (see CATALOG's rule); the run's
    # page names the image and the kubelet reports what it pulled.
    "image": "docker.io/library/golang:1.25.9-bookworm",
}


# The model servers of a ``--long`` disaggregated_inference run (issue #25): llm-d's vLLM
# simulator for the prefill and decode phases, and llm-d's routing sidecar in front of the
# decode server, as llm-d-router's own prefill/decode deployments run them (llm-d/llm-d-router
# v0.10.0, the endpoint picker aicp installs: deploy/components/vllm-prefill and vllm-decode,
# config/manifests/vllm/sim-deployment.yaml ``ghcr.io/llm-d/llm-d-inference-sim:v0.10.2``;
# the sidecar is published per release as ``llm-d-router-disagg-sidecar:${VERSION}``,
# .github/ISSUE_TEMPLATE/new-release.md). The simulator's digest has two independent public
# sources (a lab README's ``docker run ...:v0.10.2@sha256:7f3a...`` and a benchmark script's
# SIM_DIGEST); whether it is the multi-arch index was not checked. The sidecar is pinned by
# tag: the one digest seen for it comes from a single project. Only ``--long`` runs deploy
# them (disaggregated_inference), so only ``--long`` prints and pulls them.
DISAGGREGATED: dict[str, str] = {
    "inference-sim": "ghcr.io/llm-d/llm-d-inference-sim:v0.10.2"
                     "@sha256:7f3a1f72875c5dd5d00299ad358dc1f6e17041a5124609a43aa17ad318bbed32",
    "disagg-sidecar": "ghcr.io/llm-d/llm-d-router-disagg-sidecar:v0.10.0",
}


def long_images(mirror: str | None = None) -> dict[str, str]:
    """The images only ``--long`` runs use (``DISAGGREGATED``), rewritten to ``mirror``."""
    return {name: mirrored(image, mirror) for name, image in DISAGGREGATED.items()}
