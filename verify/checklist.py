"""The CNCF checklist template: which requirement ids a version has, at which level.

The template is an input (``--checklist-template PATH`` or the official file downloaded
for the version); aicp never ships a copy. Requirement ids, levels and categories are read
from it at run time.
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
OPTIONAL_METADATA = frozenset({"repoUrl"})


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def load_metadata(path: Path, template: Template) -> dict[str, str]:
    """Read ``--metadata FILE``: the template's metadata keys (camelCase or snake_case).

    Unknown keys and missing required keys are one-line errors; the template's own
    non-placeholder values (``kubernetesVersion``) count as given.
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
    known = template.metadata
    values = {_camel(str(k)): v for k, v in given.items()}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ChecklistError(f"metadata file {path}: unknown key {unknown[0]} "
                             f"(expected: {', '.join(known)})")
    bad = [k for k, v in values.items() if not isinstance(v, str | int | float)]
    if bad:
        raise ChecklistError(f"metadata file {path}: {bad[0]} must be a string")
    merged = {k: str(v) for k, v in known.items()}
    merged.update({k: str(v) for k, v in values.items()})
    missing = [k for k in known if k not in OPTIONAL_METADATA and k not in values
               and (not merged[k] or PLACEHOLDER.search(merged[k]))]
    if missing:
        raise ChecklistError(f"metadata file {path}: missing {', '.join(missing)}")
    return merged


def placeholders(metadata: dict[str, str]) -> list[str]:
    """Metadata keys still holding a ``[placeholder]`` (the CNCF validator rejects them)."""
    return [k for k, v in metadata.items() if PLACEHOLDER.search(str(v))]
