"""The probe registry and the image catalog."""

from __future__ import annotations

import re

import pytest

from aicp.verify import checklist, images
from aicp.verify.registry import discover, plan
from aicp.verify.result import Verdict
from aicp.verify.verdicts import UsageError
from tests.verify.conftest import VERSIONS, passing_probe, template


def test_every_image_is_pinned_by_digest():
    for ref in images.CATALOG.values():
        assert re.fullmatch(r"[a-z0-9./-]+/[a-z0-9._/-]+:[\w.-]+@sha256:[0-9a-f]{64}", ref)


def test_a_mirror_replaces_the_registry_and_keeps_path_and_digest():
    ref = images.mirrored(images.CATALOG["busybox"], "https://registry.local:5000/hub/")
    assert ref.startswith("registry.local:5000/hub/library/busybox:1.36.1@sha256:")
    assert images.catalog(None) == images.CATALOG
    with pytest.raises(images.MirrorError):
        images.mirrored(images.CATALOG["curl"], "bad mirror")


def test_each_probe_module_registers_the_probe_named_after_its_id():
    for rid, cls in discover().items():
        assert cls.id == rid and cls.__module__ == f"aicp.verify.probes.{rid}"
        assert cls.category


@pytest.mark.parametrize("version", VERSIONS)
def test_the_one_table_of_levels_is_the_templates_ids_and_levels_in_order(version):
    # checklist.LEVELS is what `aicp plan` and --checklist know without the template;
    # the template itself is the truth.
    tmpl = template(version)
    assert list(checklist.LEVELS[version].items()) == [(r.id, r.level)
                                                       for r in tmpl.requirements]
    assert checklist.musts(version) == [r.id for r in tmpl.requirements if r.level == "MUST"]


def test_every_supported_version_has_a_template_and_every_probe_a_requirement():
    assert checklist.SUPPORTED == VERSIONS
    ids = {rid for levels in checklist.LEVELS.values() for rid in levels}
    assert set(discover()) <= ids


def test_the_checklist_version_falls_back_from_the_option_to_the_stack_to_the_cluster():
    # GET /version of a managed cluster says minor "35+" (a free-form string).
    assert checklist.minor_of({"major": "1", "minor": "35+", "gitVersion": "v1.35.2"}) == "1.35"
    assert checklist.version_for("1.34", "1.36", "1.35") == "1.34"
    assert checklist.version_for(None, "1.36", "1.35") == "1.36"
    assert checklist.version_for(None, None, "1.35") == "1.35"


def test_the_template_decides_what_runs_and_what_is_manual():
    dra = passing_probe("dra_support")
    stray = passing_probe("not_in_any_checklist")
    planned = plan(template("1.36"), {"dra_support": dra, "not_in_any_checklist": stray})
    assert "dra_support" not in [p.requirement.id for p in planned]
    assert {p.verdict for p in planned} == {Verdict.MANUAL}
    planned = plan(template("1.35"), {"dra_support": dra}, only=["dra_support"])
    assert [(p.requirement.id, p.runs) for p in planned if p.verdict is None] == [
        ("dra_support", True)]


def test_read_only_and_long_leave_probes_out_with_the_reason():
    ro = passing_probe("dra_support", mutating=False)
    mut = passing_probe("gang_scheduling")
    planned = {p.requirement.id: p for p in plan(
        template("1.35"), {"dra_support": ro, "gang_scheduling": mut}, read_only=True)}
    assert planned["dra_support"].runs
    assert (planned["gang_scheduling"].verdict, planned["gang_scheduling"].reason) == (
        Verdict.NOT_RUN, "creates objects, left out by --read-only")


def test_unknown_ids_in_only_or_skip_name_the_valid_ones():
    with pytest.raises(UsageError, match=r"--skip gpu_sharing: not a requirement of checklist "
                                         r"1\.34; valid ids: dra_support, ai_inference"):
        plan(template("1.34"), {}, skip=["gpu_sharing"])


def test_no_probe_image_is_the_single_arch_ray_image():
    # rayproject/ray publishes no multi-arch index (arm64 only as "-aarch64" tags):
    # robust_controller's head runs busybox instead, on any node architecture.
    assert not [ref for ref in images.CATALOG.values() if "rayproject/" in ref]


def test_a_mirror_with_a_port_keeps_the_image_path_and_digest():
    ref = images.mirrored(images.CATALOG["busybox"], "registry.local:5000/hub")
    assert ref == "registry.local:5000/hub/" + images.CATALOG["busybox"].split("/", 1)[1]
    assert images.catalog("registry.local:5000/hub")["busybox"] == ref


def test_the_gpu_load_image_runs_cuda_samples_n_body():
    assert images.CATALOG["cuda-nbody"].startswith(
        "nvcr.io/nvidia/k8s/cuda-sample:nbody@sha256:59261e419d6d48a772aad5bb213f9f1588fcdb042b1")
