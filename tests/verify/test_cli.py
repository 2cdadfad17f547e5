"""``aicp verify`` as a user runs it: help, examples, one-line errors and exit codes."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from aicp.cli.main import app
from aicp.verify import cli
from tests.shared import SHARED
from tests.verify.conftest import require_shared

runner = CliRunner()


def examples(doc: str) -> list[list[str]]:
    lines = doc.split("Examples:", 1)[1].splitlines()
    return [shlex.split(line.strip())[1:] for line in lines if line.strip().startswith("aicp ")]


def invoke(args, **env):
    return runner.invoke(app, args, env=env or None)


def test_starting_the_cli_imports_neither_kubernetes_nor_the_runner():
    code = ("import sys, aicp.cli.main; print(sorted(m for m in sys.modules if m.split('.')[0] == "
            "'kubernetes' or m in ('aicp.verify.runner', 'aicp.verify.session', "
            "'rich.progress', 'rich.live')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_help_shows_examples_for_both_commands():
    for args in (["verify", "--help"], ["verify", "cleanup", "--help"]):
        result = invoke(args)
        assert result.exit_code == 0
        assert "Examples:" in result.output and "aicp verify" in result.output
    assert len(examples(cli.verify.__doc__)) >= 5


@pytest.fixture
def world(tmp_path, kubeapi_factory, monkeypatch):
    """A directory like a user's: a kubeconfig for an emulated 1.35 cluster (context
    ``emulator``), the 1.35 template, product metadata, a ``pulumi`` on PATH for stack dev,
    and the official template URL served from ../shared (as if online)."""
    kube = kubeapi_factory("reference-platform")
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig.yaml", context="emulator")
    conformance = require_shared("conformance")
    (tmp_path / "AIConformance-1.35.yaml").write_text(
        (conformance / "AIConformance-1.35.yaml").read_text())
    tmpl = yaml.safe_load((conformance / "AIConformance-1.35.yaml").read_text())
    # Values the CNCF validator accepts offline (URLs, an SVG logo, an email address).
    (tmp_path / "product.yaml").write_text(yaml.safe_dump(
        {**{k: f"Example {k}" for k in tmpl["metadata"] if k != "kubernetesVersion"},
         **{k: f"https://example.org/{k}" for k in ("websiteUrl", "repoUrl",
                                                    "documentationUrl")},
         "productLogoUrl": "https://example.org/logo.svg",
         "contactEmailAddress": "ai@example.org",
         "k8sConformanceUrl": "https://github.com/cncf/k8s-conformance/tree/master/v1.35/x"}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    outputs = {"kubeconfig": kubeconfig.read_text(), "checklistVersion": "1.35",
               "gpuPools": [], "addons": {"kueue": "0.14.1"}, "target": "onprem"}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    fake_pulumi(bin_dir, f'[ "$6" = dev ] && cat {tmp_path}/outputs.json && exit 0\n'
                         'echo "error: no stack named \'$6\' found" >&2; exit 255')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("AICP_CHECKLIST_URL",
                       (SHARED / "conformance").as_uri() + "/AIConformance-{version}.yaml")
    return tmp_path


def fake_pulumi(bin_dir, body: str) -> None:
    script = bin_dir / "pulumi"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)


@pytest.mark.parametrize("args", examples(cli.verify.__doc__) + examples(cli.cleanup.__doc__),
                         ids=" ".join)
def test_each_help_example_runs_against_an_emulated_cluster(world, args):
    result = invoke(args)
    # 0 or 1 depends on the probes' verdicts on the emulator; 2 would be a usage error.
    assert result.exit_code in (0, 1), result.output
    assert re.search(r"cluster: http://127\.0\.0\.1:\d+", result.output)
    assert "error:" not in result.output


def test_settings_are_printed_before_the_first_probe_and_reports_written(world):
    result = invoke(["verify", "--output", "json,junit", "--output", "checklist",
                     "--metadata", "product.yaml", "--registry-mirror", "mirror.local/hub"])
    assert result.exit_code in (0, 1), result.output
    out = result.output
    for line in ("context: emulator", "checklist: 1.35", "kubernetes: v1.35.0",
                 "image cuda: mirror.local/hub/nvidia/cuda:12.4.1-base-ubuntu22.04@sha256:"):
        assert line in out
    assert out.index("image busybox") < out.index("Kubernetes AI Conformance 1.35")
    for path in ("PRODUCT.yaml", "results/junit.xml", "results/results.json",
                 "results/e2e.log"):
        assert (world / "aicp-verify-results" / path).is_file()
    data = yaml.safe_load((world / "aicp-verify-results" / "PRODUCT.yaml").read_text())
    assert data["metadata"]["vendorName"] == "Example vendorName"


def one_line_error(result, pattern):
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, pattern", [
    (["--kubeconfig", "nope.yaml"], r"kubeconfig .*nope.yaml not found"),
    (["--context", "prod"], r"context 'prod' is not in kubeconfig .* \(contexts: emulator\)"),
    (["--only", "not_a_requirement"],
     r"--only not_a_requirement: not a requirement of checklist 1\.35; valid ids: "
     r"dra_support, "),
    (["--checklist", "1.36", "--only", "dra_support"],
     r"--only dra_support: not a requirement of checklist 1\.36"),
    (["--output", "html"], r"--output html: choose from json, junit, checklist"),
    (["--checklist", "1.30"], r"--checklist 1\.30: supported versions are 1\.34"),
    (["--stack", "prod"], r"pulumi stack output --stack prod failed: error: no stack named"),
    (["--stack", "dev", "--kubeconfig", "kubeconfig.yaml"], r"either --stack NAME or"),
    (["--metadata", "kubeconfig.yaml"], r"metadata file kubeconfig.yaml: unknown key"),
    (["--registry-mirror", "https://mirror.local/a b"], r"--registry-mirror .* host"),
    (["--run-id", "Not_Valid"], r"--run-id 'Not_Valid'"),
    (["--checklist-template", "AIConformance-1.35.yaml", "--checklist", "1.34"],
     r"template AIConformance-1.35.yaml is for 1.35"),
])
def test_usage_and_config_errors_are_one_line_and_exit_2(world, args, pattern):
    one_line_error(invoke(["verify", *args]), pattern)


def test_an_unreachable_cluster_is_one_line_and_exit_2(world):
    (world / "down.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Config
        current-context: down
        clusters: [{name: down, cluster: {server: "https://127.0.0.1:1"}}]
        users: [{name: u, user: {token: t}}]
        contexts: [{name: down, context: {cluster: down, user: u}}]
        """))
    one_line_error(invoke(["verify", "--kubeconfig", "down.yaml"]),
                   r"cannot reach cluster https://127.0.0.1:1 \(Connection refused\)")
    one_line_error(invoke(["verify", "cleanup", "--kubeconfig", "down.yaml"]),
                   r"cannot reach cluster")


def test_an_unparsable_kubeconfig_is_one_line_and_exit_2(world):
    (world / "bad.yaml").write_text("clusters: [unclosed\n")
    one_line_error(invoke(["verify", "--kubeconfig", "bad.yaml"]), r"not readable YAML")


def test_missing_pulumi_cli_is_one_line_and_exit_2(world, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    one_line_error(invoke(["verify", "--stack", "dev"]), r"pulumi CLI not found on PATH")


def test_no_network_for_the_template_is_one_line_naming_the_option(world, monkeypatch):
    monkeypatch.setenv("AICP_CHECKLIST_URL", "file:///nonexistent/AIConformance-{version}.yaml")
    one_line_error(invoke(["verify"]),
                   r"cannot download the checklist template .* pass --checklist-template PATH")
