"""The CNCF submission validator's rules, both generations in use, run offline on a
submission before aicp writes it.

``legacy``: cncf/k8s-ai-conformance ``scripts/validate.go`` on main at b2c8969 (2026-08-19),
read line by line: metadata fields (``metadataFields``), placeholders, the
``k8sConformanceURLPattern``, every template category and id, statuses, MUST =
Implemented, N/A needs notes, and every non-URL evidence entry ``os.Stat``-ed as
``filepath.Join(productDir, entry)``, a literal path.

``hybrid``: the validator of cncf/k8s-ai-conformance#141 ("Validate hybrid verification
test artifacts (v1.37+)", merged 2026-09-08) as its description and review describe it:
``file://`` and ``#fragment`` stripped, a leading ``vX.Y/<product>/`` of the product's own
directory stripped, paths escaping the product directory rejected; files named exactly
``junit.xml``, ``results.json`` (go test -json) or ``e2e.log`` (go test -v) parsed, and any
failing test in one is an error; the test checked for a requirement is the fragment, else
the mapped upstream name; it must exist and pass, skipped is an error when the status is
Implemented; ``cluster_autoscaling`` alone may be N/A.

What needs the network is not checked: CNCF membership of ``vendorName`` (pass ``members``
to check it against a list) and whether http(s) values answer.
"""


from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..wgsuite import MAPPED

METADATA_FIELDS = {  # validate.go metadataFields: name -> required
    "kubernetesVersion": True, "platformName": True, "platformVersion": True,
    "vendorName": True, "websiteUrl": True, "repoUrl": False, "documentationUrl": True,
    "productLogoUrl": True, "description": True, "contactEmailAddress": True,
    "k8sConformanceUrl": True}
K8S_CONFORMANCE_URL = re.compile(
    r"^https://github\.com/cncf/k8s-conformance/tree/(master|main)/v\d+\.\d+/[^/]+/?$")
STATUSES = {"Implemented", "Not Implemented", "Partially Implemented", "N/A"}
ARTIFACTS = {"junit.xml", "results.json", "e2e.log"}
N_A_ALLOWED = {"cluster_autoscaling"}


def _snake(name: str) -> str:  # validate.go toSnakeCase
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _version(product: Path) -> str | None:
    found = re.search(r"(?:^|/)(v\d+\.\d+)/", product.as_posix())
    return found[1] if found else None


def _load(product: Path) -> tuple[dict[str, Any], list[str]]:
    """The product as validate.go's ConformanceDoc unmarshals it (typed fields)."""
    try:
        doc = yaml.safe_load(product.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return {}, [f"Error loading product: {exc}"]
    if not isinstance(doc, dict):
        return {}, ["Error loading product: not a mapping"]
    for items in (doc.get("spec") or {}).values():
        for item in items or []:
            for key in ("id", "description", "level", "status", "notes"):
                if item.get(key) is not None and not isinstance(item[key], str):
                    return {}, [f"Error loading product: {key} of {item.get('id')} is not a "
                                "string"]
            evidence = item.get("evidence")
            if evidence is not None and not (isinstance(evidence, list) and all(
                    isinstance(e, str) for e in evidence)):
                return {}, [f"Error loading product: evidence of {item.get('id')} is not a "
                            "list of strings"]
    return doc, []


def _metadata(doc: dict, members: set[str] | None) -> list[str]:
    errors = []
    meta = doc.get("metadata")
    if meta is None:
        return ["Missing 'metadata' section"]
    for name, required in METADATA_FIELDS.items():
        snake = _snake(name)
        value = meta.get(name, meta.get(snake))
        if value is None:
            if required:
                errors.append(f"Missing metadata field: {name} (or {snake})")
            continue
        if not isinstance(value, str):
            errors.append(f"Metadata field {name} is not a string")
            continue
        if value == "":
            if required:
                errors.append(f"Metadata field {name} is empty")
        elif value.startswith("[") and value.endswith("]"):
            errors.append(f"Metadata field {name} has placeholder value: {value}")
        elif name == "k8sConformanceUrl" and not K8S_CONFORMANCE_URL.match(value):
            errors.append(f"Invalid k8sConformanceUrl format: {value}")
    vendor = str(meta.get("vendorName", meta.get("vendor_name")) or "").strip()
    if members is not None and vendor and vendor not in members:
        errors.append(f"vendorName '{vendor}' does not match any CNCF member")
    return errors


@dataclass
class Report:
    """Test results parsed from one artifact: name -> passed / failed / skipped."""

    results: dict[str, str]
    failures: list[str]


def parse_artifact(path: Path) -> Report:
    """junit.xml (go-junit-report/gotestsum shapes), results.json or e2e.log."""
    name = path.name.lower()
    results: dict[str, str] = {}
    failures: list[str] = []
    if name == "junit.xml":
        root = ET.parse(path).getroot()
        if root.tag not in ("testsuites", "testsuite"):
            raise ValueError(f"root element {root.tag} is not testsuites/testsuite")
        for case in root.iter("testcase"):
            test = case.get("name") or ""
            if case.find("failure") is not None or case.find("error") is not None:
                results[test] = "failed"
            elif case.find("skipped") is not None:
                results[test] = "skipped"
            else:
                results[test] = "passed"
    elif name == "results.json":
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            action, test = event.get("Action"), event.get("Test")
            if action in ("pass", "fail", "skip"):
                if test:
                    results[test] = {"pass": "passed", "fail": "failed",
                                     "skip": "skipped"}[action]
                elif action == "fail":
                    failures.append(f"package {event.get('Package', '')}".strip())
    else:  # e2e.log, go test -v
        for line in path.read_text().splitlines():
            found = re.match(r"^\s*--- (PASS|FAIL|SKIP): (\S+) \(", line)
            if found:
                results[found[2]] = {"PASS": "passed", "FAIL": "failed",
                                     "SKIP": "skipped"}[found[1]]
            elif re.match(r"^FAIL(\s|$)", line):
                failures.append(line.strip())
        if not results:
            raise ValueError("no go test -v results (--- PASS/FAIL/SKIP: Name) in it")
    failures = [t for t, r in results.items() if r == "failed"] + failures
    return Report(results, failures)


def _requirements(doc: dict, template: Path, *, hybrid: bool, product_dir: Path,
                  version: str) -> list[str]:
    schema = yaml.safe_load(template.read_text(encoding="utf-8"))
    spec = doc.get("spec")
    if spec is None:
        return ["Missing 'spec' section"]
    errors: list[str] = []
    for category, schema_items in schema["spec"].items():
        if category not in spec:
            errors.append(f"Missing spec category: {category}")
            continue
        given = {item.get("id"): item for item in spec[category] or []}
        for s in schema_items:
            rid = s["id"]
            item = given.get(rid)
            if item is None:
                errors.append(f"Missing requirement '{rid}' in category '{category}'")
                continue
            status, evidence = item.get("status") or "", item.get("evidence") or []
            notes = item.get("notes") or ""
            if s.get("level") == "SHOULD" and status == "" and not evidence:
                continue
            if status not in STATUSES:
                errors.append(f"Invalid status '{status}' for '{rid}'")
            if s.get("level") == "MUST" and status != "Implemented" and not (
                    hybrid and rid in N_A_ALLOWED and status == "N/A"):
                errors.append(f"Requirement '{rid}' is MUST level but status is '{status}'")
            if status == "N/A" and notes == "":
                errors.append(f"Notes required for '{rid}' when status is N/A")
            for link in evidence:
                if link == "":
                    continue
                if link.startswith(("http://", "https://")):
                    continue  # answering is checked online only
                errors += (_hybrid_evidence if hybrid else _legacy_evidence)(
                    rid, link, status, product_dir, version)
    return errors


def _legacy_evidence(rid, link, status, product_dir: Path, version) -> list[str]:
    # filepath.Join cleans the joined path ("a//b" -> "a/b", "x/../y" -> "y").
    full = Path(re.sub(r"/+", "/", (product_dir / link).as_posix()))
    if not full.exists():
        return [f"Invalid evidence file for '{rid}': {link} (not found at {full})"]
    return []


def _hybrid_evidence(rid, link, status, product_dir: Path, version) -> list[str]:
    path, _, fragment = link.removeprefix("file://").partition("#")
    own = f"{version}/{product_dir.name}/"
    path = path.removeprefix(own)
    full = (product_dir / path).resolve()
    if not full.is_relative_to(product_dir.resolve()):
        return [f"Invalid evidence file for '{rid}': {link} (outside the product directory)"]
    if not full.exists():
        return [f"Invalid evidence file for '{rid}': {link} (not found at {full})"]
    if full.name.lower() not in ARTIFACTS:
        return []
    try:
        report = parse_artifact(full)
    except (ValueError, ET.ParseError, json.JSONDecodeError) as exc:
        return [f"Invalid test artifact for '{rid}': {link} ({exc})"]
    errors = []
    if report.failures:
        errors.append(f"Test artifact {link} contains failing tests: "
                      f"{', '.join(sorted(report.failures))}")
    test = fragment or MAPPED.get(rid)
    if test:
        result = report.results.get(test)
        if result is None:
            errors.append(f"Test {test} for '{rid}' not found in {link}")
        elif result == "failed":
            errors.append(f"Test {test} for '{rid}' failed in {link}")
        elif result == "skipped" and status == "Implemented":
            errors.append(f"Test {test} for '{rid}' was skipped in {link} but the status is "
                          "Implemented")
    return errors


def _validate(product: Path, template: Path, members, *, hybrid: bool) -> list[str]:
    version = _version(product)
    if version is None:
        return [f"Could not determine version from path {product}"]
    if not template.exists():
        return [f"Schema not found at {template}"]
    doc, errors = _load(product)
    if errors:
        return errors
    return _metadata(doc, members) + _requirements(doc, template, hybrid=hybrid,
                                                   product_dir=product.parent,
                                                   version=version)


def legacy(product: Path, template: Path, members: set[str] | None = None) -> list[str]:
    """Errors the validator on main up to 2026-08 reports for ``v1.X/<product>/PRODUCT.yaml``."""
    return _validate(product, template, members, hybrid=False)


def hybrid(product: Path, template: Path, members: set[str] | None = None) -> list[str]:
    """Errors the hybrid-verification validator (cncf/k8s-ai-conformance#141) reports."""
    return _validate(product, template, members, hybrid=True)


def product_name(metadata: dict | None) -> str:
    """The folder name a CNCF pull request uses for the product (``v1.37/<product>/``):
    the platform name, lowercased, runs of other characters made one dash."""
    meta = metadata or {}
    name = str(meta.get("platformName") or meta.get("platform_name") or "")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug if slug and not name.startswith("[") else "aicp"


def check(contents: dict[str, str | bytes], template_text: str, version: str,
          product: str = "aicp") -> dict[str, list[str]]:
    """Both generations' errors for a submission not yet written: its files are laid out in
    a temporary ``v<version>/<product>/`` folder, as in a CNCF pull request, and checked
    there against the template."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="aicp-submission-") as tmp:
        folder = Path(tmp) / f"v{version}" / product
        for name, data in contents.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data, encoding="utf-8")
        template = Path(tmp) / f"AIConformance-{version}.yaml"
        template.write_text(template_text, encoding="utf-8")
        product_file = folder / "PRODUCT.yaml"
        found = {"legacy": legacy(product_file, template),
                 "hybrid": hybrid(product_file, template)}
    # The staging folder is temporary: name files relative to the submission instead.
    return {gen: [e.replace(f"{folder}/", "").replace(str(folder), ".") for e in errors]
            for gen, errors in found.items()}
