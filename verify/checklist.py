"""The CNCF checklist template: which requirement ids a version has, at which level.

The template is an input (``--checklist-template PATH`` or the official file downloaded
for the version); aicp never ships a copy. ``aicp verify`` reads requirement ids, levels
and categories from it at run time. ``LEVELS`` states the ids and levels of each supported
version once, for what must work without the template (``aicp plan`` offline, the
supported versions, the version fallback); a test holds it to the templates.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

OFFICIAL_URL = ("https://raw.githubusercontent.com/cncf/k8s-ai-conformance/main/docs/"
                "AIConformance-{version}.yaml")
VERSION = re.compile(r"^1\.\d+$")
PLACEHOLDER = re.compile(r"\[[^\]]+\]")
STATUSES = ("Implemented", "Not Implemented", "Partially Implemented", "N/A")


# Requirement id → level, in template order, as cncf/k8s-ai-conformance
# docs/AIConformance-<version>.yaml states them. 1.35 adds three accelerator SHOULDs; 1.36
# drops dra_support (core Kubernetes conformance covers DRA from 1.35) and adds three
# networking SHOULDs; 1.37 adds workload_sandboxing.
_M, _S = "MUST", "SHOULD"
LEVELS: dict[str, dict[str, str]] = {
    "1.34": {"dra_support": _M, "ai_inference": _M, "gang_scheduling": _M,
             "cluster_autoscaling": _M, "pod_autoscaling": _M, "accelerator_metrics": _M,
             "ai_service_metrics": _M, "secure_accelerator_access": _M,
             "robust_controller": _M},
    "1.35": {"dra_support": _M, "driver_runtime_management": _S, "gpu_sharing": _S,
             "virtualized_accelerator": _S, "ai_inference": _M, "gang_scheduling": _M,
             "cluster_autoscaling": _M, "pod_autoscaling": _M, "accelerator_metrics": _M,
             "ai_service_metrics": _M, "secure_accelerator_access": _M,
             "robust_controller": _M},
    "1.36": {"driver_runtime_management": _S, "gpu_sharing": _S,
             "virtualized_accelerator": _S, "ai_inference": _M,
             "advanced_inference_ingress": _S, "high_performance_networking": _S,
             "disaggregated_inference": _S, "gang_scheduling": _M, "cluster_autoscaling": _M,
             "pod_autoscaling": _M, "accelerator_metrics": _M, "ai_service_metrics": _M,
             "secure_accelerator_access": _M, "robust_controller": _M},
    "1.37": {"driver_runtime_management": _S, "gpu_sharing": _S,
             "virtualized_accelerator": _S, "ai_inference": _M,
             "advanced_inference_ingress": _S, "high_performance_networking": _S,
             "disaggregated_inference": _S, "gang_scheduling": _M, "cluster_autoscaling": _M,
             "pod_autoscaling": _M, "accelerator_metrics": _M, "ai_service_metrics": _M,
             "secure_accelerator_access": _M, "workload_sandboxing": _S,
             "robust_controller": _M},
}
# The versions aicp has probes and checklist rules for: ``--checklist`` takes only these.
SUPPORTED = tuple(LEVELS)


def musts(version: str) -> list[str]:
    """The MUST requirement ids of a supported checklist version, in template order."""
    return [rid for rid, level in LEVELS[version].items() if level == _M]


def minor_of(version_info: dict[str, Any]) -> str:
    """``"1.35"`` from the API server's ``GET /version``.

    ``minor`` is a free-form string (k8s.io/apimachinery pkg/version/types.go ``Info``):
    managed clusters add a suffix ("35+"), so only its digits count.
    """
    minor = re.sub(r"[^0-9]", "", str(version_info.get("minor", "")))
    major = re.sub(r"[^0-9]", "", str(version_info.get("major", ""))) or "1"
    if minor:
        return f"{major}.{minor}"
    # No usable minor: gitVersion ("v1.35.2-eks-...") says it too; neither is "" (unknown),
    # never "1." (a server's /version may leave fields out: every field is optional there).
    found = re.match(r"^v?(\d+)\.(\d+)", str(version_info.get("gitVersion", "")))
    return f"{found[1]}.{found[2]}" if found else ""


def version_for(given: str | None, stack: str | None, cluster: str) -> str:
    """The checklist version a run uses: ``--checklist``, else the stack's
    ``checklistVersion`` output, else the cluster's Kubernetes minor."""
    return given or stack or cluster


class ChecklistError(Exception):
    """A template or metadata problem, one line for a person (exit code 2)."""


@dataclass(frozen=True)
class Requirement:
    id: str
    category: str
    level: str
    description: str


@dataclass
class Template:
    """A loaded checklist template: its text (kept to preserve comments) and parsed data."""

    version: str
    text: str
    data: dict[str, Any]
    source: str

    @property
    def requirements(self) -> list[Requirement]:
        return [Requirement(item["id"], category, item.get("level", ""),
                            item.get("description", ""))
                for category, items in self.data["spec"].items()
                for item in items or []]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.requirements]

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.data.get("metadata") or {})


def parse(text: str, source: str) -> Template:
    """Parse template text; the version comes from ``metadata.kubernetesVersion``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ChecklistError(f"checklist template {source} is not valid YAML: "
                             f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        raise ChecklistError(f"checklist template {source} has no 'spec' mapping: pass the "
                             "AIConformance-<version>.yaml file from cncf/k8s-ai-conformance")
    for category, items in data["spec"].items():
        for item in items or []:
            if not isinstance(item, dict) or not item.get("id"):
                raise ChecklistError(f"checklist template {source}: an entry of spec."
                                     f"{category} has no id")
    raw = str((data.get("metadata") or {}).get("kubernetesVersion", "")).lstrip("v")
    version = ".".join(raw.split(".")[:2])
    if not VERSION.match(version):
        raise ChecklistError(f"checklist template {source}: metadata.kubernetesVersion "
                             f"{raw!r} is not a version like v1.35")
    return Template(version, text, data, source)


def load(path: Path) -> Template:
    """Load a template from a file; a missing or unreadable file is a one-line error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ChecklistError(f"cannot read checklist template {path}: {exc.strerror}") from None
    return parse(text, str(path))


def download(version: str, *, timeout: float = 15.0, url: str | None = None) -> Template:
    """Fetch the official template for ``version`` from the CNCF repository.

    ``AICP_CHECKLIST_URL`` (a ``{version}`` pattern, http(s) or file) points at a mirror.
    """
    address = (url or os.environ.get("AICP_CHECKLIST_URL") or OFFICIAL_URL).format(
        version=version)
    try:
        with urllib.request.urlopen(address, timeout=timeout) as response:  # noqa: S310
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChecklistError(f"cannot download the checklist template {address} ({reason}): "
                             "pass --checklist-template PATH") from None
    return parse(text, address)


# Metadata ---------------------------------------------------------------------------------
# The keys and rules of cncf/k8s-ai-conformance scripts/validate.go (main @ b2c8969,
# 2026-08-19, ``metadataFields``): every key but repoUrl is required, for every version,
# including k8sConformanceUrl, which the 1.34, 1.36 and 1.37 templates leave out.
METADATA_KEYS = ("kubernetesVersion", "platformName", "platformVersion", "vendorName",
                 "websiteUrl", "repoUrl", "documentationUrl", "productLogoUrl", "description",
                 "contactEmailAddress", "k8sConformanceUrl")
OPTIONAL_METADATA = frozenset({"repoUrl"})
# validate.go ``k8sConformanceURLPattern``.
K8S_CONFORMANCE_URL = re.compile(
    r"^https://github\.com/cncf/k8s-conformance/tree/(master|main)/v\d+\.\d+/[^/]+/?$")
# validate.go fetches every value starting with "http"; these keys are meant to be URLs
# (instructions.md, "PRODUCT.yaml" table).
URL_KEYS = ("websiteUrl", "repoUrl", "documentationUrl", "productLogoUrl")
_URL = re.compile(r"^https?://[^/\s:]+\.[^/\s]+(/\S*)?$")
# The PR template (.github/PULL_REQUEST_TEMPLATE.md) and instructions.md: "the product/
# project logo in SVG, EPS or AI format -- not a PNG".
LOGO_EXTENSIONS = (".svg", ".eps", ".ai")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NOT_CHECKED_OFFLINE = ("not checked offline (the CNCF validator checks them when you open the "
                       "pull request): vendorName must be a CNCF member's exact name "
                       "(https://landscape.cncf.io/members), and every http(s) URL must answer")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _placeholder(value: str) -> bool:
    # validate.go: a value that starts with "[" and ends with "]"; any "[...]" left from the
    # template is as much a placeholder.
    return bool(PLACEHOLDER.search(value)) or (value.startswith("[") and value.endswith("]"))


def metadata_problem(key: str, value: str, version: str) -> str | None:
    """What the CNCF validator would reject in one metadata value, or None.

    Only the rules that need no network: vendorName membership and URLs answering are
    checked when the submission is opened (``NOT_CHECKED_OFFLINE``).
    """
    if not value.strip():
        return None if key in OPTIONAL_METADATA else f"{key} is empty: fill it in"
    if _placeholder(value):
        return f"{key} still holds the placeholder {value!r}: replace it"
    if key == "kubernetesVersion":
        if value.strip().removeprefix("v") != version:
            return (f"kubernetesVersion {value!r} is not the checklist's version: "
                    f"write v{version}")
    elif key == "k8sConformanceUrl":
        if not K8S_CONFORMANCE_URL.match(value.strip()):
            return (f"k8sConformanceUrl {value!r} is not a cncf/k8s-conformance submission: "
                    "write https://github.com/cncf/k8s-conformance/tree/master/v1.XX/<product>")
    elif key in URL_KEYS:
        if not _URL.match(value.strip()):
            return f"{key} {value!r} is not an http(s) URL: write https://..."
        if key == "productLogoUrl" and not value.strip().split("?")[0].lower().endswith(
                LOGO_EXTENSIONS):
            return (f"productLogoUrl {value!r} is not an SVG, EPS or AI file: the CNCF takes "
                    "logos only in those formats")
    elif key == "contactEmailAddress" and not _EMAIL.match(value.strip()):
        return f"contactEmailAddress {value!r} is not an email address"
    return None


def load_metadata(path: Path, template: Template) -> dict[str, str]:
    """Read ``--metadata FILE``: the CNCF metadata keys (camelCase or snake_case).

    Unknown keys, missing required keys and values the CNCF validator would reject are
    one-line errors naming the key; the template's ``kubernetesVersion`` counts as given.
    An optional key left out (repoUrl) is written empty, as the validator accepts, never
    as the template's placeholder.
    """
    try:
        given = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ChecklistError(f"cannot read metadata file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ChecklistError(f"metadata file {path} is not valid YAML: "
                             f"{str(exc).splitlines()[0]}") from None
    if isinstance(given, dict) and isinstance(given.get("metadata"), dict):
        given = given["metadata"]
    if not isinstance(given, dict):
        raise ChecklistError(f"metadata file {path} must be a mapping of metadata keys")
    known = [*template.metadata, *(k for k in METADATA_KEYS if k not in template.metadata)]
    values = {_camel(str(k)): v for k, v in given.items()}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ChecklistError(f"metadata file {path}: unknown key {unknown[0]} "
                             f"(expected: {', '.join(known)})")
    bad = [k for k, v in values.items() if not isinstance(v, str | int | float)]
    if bad:
        raise ChecklistError(f"metadata file {path}: {bad[0]} must be a string")
    merged = {k: str(template.metadata.get(k, "")) for k in known}
    merged.update({k: str(v) for k, v in values.items()})
    for key in OPTIONAL_METADATA:
        if key not in values:
            merged[key] = ""
    missing = [k for k in known if k not in OPTIONAL_METADATA and k not in values
               and (not merged[k] or _placeholder(merged[k]))]
    if missing:
        raise ChecklistError(f"metadata file {path}: missing {', '.join(missing)}")
    for key in known:
        problem = metadata_problem(key, merged[key], template.version)
        if problem:
            raise ChecklistError(f"metadata file {path}: {problem}")
    merged["kubernetesVersion"] = f"v{template.version}"
    return merged


def placeholders(metadata: dict[str, str]) -> list[str]:
    """Metadata keys still holding a ``[placeholder]`` (the CNCF validator rejects them)."""
    return [k for k, v in metadata.items() if _placeholder(str(v))]


def unfilled(metadata: dict[str, str]) -> list[str]:
    """Placeholders, and required keys the template left out (k8sConformanceUrl in 1.34,
    1.36 and 1.37): what a person still has to fill before submitting."""
    return placeholders(metadata) + [k for k in METADATA_KEYS if k not in OPTIONAL_METADATA
                                     and k not in metadata]


# Submission -------------------------------------------------------------------------------
def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def submission_problem(template: Template, cluster_minor: str,
                       supported: tuple[str, ...] = SUPPORTED, *,
                       submission: bool) -> str | None:
    """Why ``template`` cannot be filled for this cluster, or None.

    A template outside ``supported`` is refused as ``--checklist`` refuses it; a checklist
    newer than the cluster's minor cannot describe it (its requirements assume APIs the
    cluster does not serve), so a ``submission`` (``--output checklist``) for it is refused.
    """
    if template.version not in supported:
        return (f"checklist template {template.source} is for {template.version}: supported "
                f"versions are {', '.join(supported)}")
    if (submission and VERSION.match(cluster_minor)
            and _minor(template.version) > _minor(cluster_minor)):
        return (f"checklist {template.version} is newer than the cluster's Kubernetes "
                f"{cluster_minor}: a submission must use the cluster's version or older "
                f"(pass --checklist {cluster_minor})")
    return None
