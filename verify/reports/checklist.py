"""The CNCF checklist filled from a run: the template's text with status, evidence, notes.

The template's lines are kept (header comments, category order, descriptions verbatim);
only ``metadata`` values and each requirement's ``status``/``evidence``/``notes`` lines are
replaced. The result must parse to the template's data with those fields changed; if the
text edit cannot guarantee that (an unusual template layout), the file is re-emitted with
``yaml.safe_dump`` under the template's header comments instead.

Status mapping (never "Implemented" without a PASS, see ``verdicts.status``):
  PASS → Implemented; FAIL → Not Implemented (Partially Implemented when the probe says
  some parts passed); SKIP → N/A with the reason as notes; ERROR, MANUAL, NOT_RUN → status
  left empty and no evidence, with notes saying why: nothing was decided, so a person
  decides (the CNCF validator then reports a MUST as incomplete, which it is).

Evidence entries are plain paths relative to PRODUCT.yaml, the requirement's evidence page
first, then aicp's test artifacts and the bundle's files: the legacy CNCF validator
``os.Stat``s each entry as a literal path (a ``file://`` prefix or ``#fragment`` would be a
missing file). aicp's artifacts are not named ``junit.xml``/``e2e.log``, so the hybrid
validator does not read them as the working group's suite; the suite's own artifacts
(``--wg-suite``) are linked only from the three ids that validator maps to a suite test,
and only when that test passed (``wgsuite.links``).
"""

from __future__ import annotations

import copy
import json
import re

import yaml

from .. import verdicts
from ..checklist import Template
from ..result import Verdict
from ..verdicts import Outcome, RunReport
from . import JUNIT_FILE, LOG_FILE
from .bundle import evidence_files

_KEY = re.compile(r"^(?P<indent>\s*)(?:- )?(?P<key>[A-Za-z_][\w-]*):(?P<rest>.*)$")
_ID = re.compile(r"^(?P<indent>\s*)- id:\s*(?P<id>[\"']?[\w-]+[\"']?)\s*(#.*)?$")
_FIELDS = ("status", "evidence", "notes")
ARTIFACTS = (JUNIT_FILE, LOG_FILE)


def entry(outcome: Outcome, suite_files: list[str] | None = None) -> dict:
    """status, evidence and notes for one requirement's outcome; ``suite_files``: the
    working group's suite's files this id links (``wgsuite.report.links``)."""
    r = outcome.result
    page, *files = evidence_files(outcome)
    evidence = [page, *ARTIFACTS, *files, *(suite_files or [])]
    status = verdicts.status(outcome)
    if r.verdict is Verdict.SKIP:
        return {"status": status, "evidence": evidence,
                "notes": r.reason or "not applicable to this platform"}
    if status:
        return {"status": status, "evidence": evidence, "notes": r.reason}
    if r.verdict is Verdict.ERROR:
        return {"status": "", "evidence": [],
                "notes": f"Not decided automatically (ERROR): {r.reason}. See {LOG_FILE}; "
                         "re-run or verify by hand."}
    if r.verdict is Verdict.MANUAL:
        return {"status": "", "evidence": [], "notes": r.reason}
    return {"status": "", "evidence": [], "notes": f"Not verified in this run: {r.reason}."}


def filled(template: Template, entries: dict[str, dict], metadata: dict | None) -> dict:
    """The data the checklist file must parse to."""
    data = copy.deepcopy(template.data)
    if metadata:
        data["metadata"] = {**(data.get("metadata") or {}), **metadata}
    for items in data["spec"].values():
        for item in items or []:
            if item["id"] in entries:
                item.update(entries[item["id"]])
    return data


def render(template: Template, entries: dict[str, dict], metadata: dict | None = None) -> str:
    """The checklist text; round-trips through ``yaml.safe_load`` to ``filled(...)``."""
    expected = filled(template, entries, metadata)
    try:
        text = _edit(template.text, entries, metadata or {})
        if yaml.safe_load(text) == expected:
            return text
    except (yaml.YAMLError, ValueError):
        pass
    header = "".join(line for line in template.text.splitlines(keepends=True)
                     if line.startswith("#"))
    return header + "\n" + yaml.safe_dump(expected, sort_keys=False, allow_unicode=True,
                                          width=1000)


def _scalar(value) -> str:
    # JSON strings and lists are valid YAML flow scalars/sequences.
    return json.dumps(value, ensure_ascii=False)


def _edit(text: str, entries: dict[str, dict], metadata: dict) -> str:
    out: list[str] = []
    section, current, key_indent = None, None, -1
    skip_deeper_than: int | None = None
    # Metadata keys the template lacks (the 1.36 and 1.37 templates have no
    # k8sConformanceUrl, which the validator requires) go after its last metadata key.
    seen: set[str] = set()
    meta_indent, insert_at = "  ", 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        indent = len(body) - len(body.lstrip())
        if skip_deeper_than is not None:
            if body.strip() and (indent > skip_deeper_than or body.lstrip().startswith("- ")
                                 and indent == skip_deeper_than):
                continue  # the old value's continuation lines (a block list)
            skip_deeper_than = None
        if indent == 0 and body and not body.startswith("#"):
            if section == "metadata":
                out[insert_at:insert_at] = [f"{meta_indent}{key}: {_scalar(value)}\n"
                                            for key, value in metadata.items()
                                            if key not in seen]
            section = body.split(":")[0].strip()
            current = None
        match_id = _ID.match(body)
        if section == "spec" and match_id:
            current = match_id["id"].strip("\"'")
            key_indent = len(match_id["indent"]) + 2
            out.append(line)
            continue
        found = _KEY.match(body)
        if found and section == "metadata" and indent > 0:
            seen.add(found["key"])
            meta_indent, insert_at = found["indent"], len(out) + 1
        if found and section == "metadata" and indent > 0 and found["key"] in metadata:
            out.append(f"{found['indent']}{found['key']}: {_scalar(metadata[found['key']])}\n")
            skip_deeper_than = indent
            continue
        if (found and section == "spec" and current in entries and indent == key_indent
                and found["key"] in _FIELDS):
            rest = found["rest"]
            comment = re.search(r"(\s+#[^\"']*)$", rest)
            keep = comment.group(1) if comment and rest.split("#")[0].strip() in (
                '""', "''", "[]", "") else ""
            value = _scalar(entries[current][found["key"]])
            out.append(f"{found['indent']}{found['key']}: {value}{keep}\n")
            skip_deeper_than = indent
            continue
        out.append(line)
    return "".join(out)


def text(report: RunReport, template: Template, metadata: dict | None = None,
         links: dict[str, list[str]] | None = None) -> str:
    entries = {o.requirement.id: entry(o, (links or {}).get(o.requirement.id))
               for o in report.outcomes}
    return render(template, entries, metadata)
