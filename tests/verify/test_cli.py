"""``aicp verify`` as a user runs it: help, examples, one-line errors and exit codes."""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime

import pytest
import yaml
from typer.testing import CliRunner

from aicp.cli.main import app
from aicp.verify import cli
from aicp.verify.version import VERSION
from tests.shared import SHARED
from tests.verify.conftest import require_shared, submission

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
    and the official template URL answered from the upstream templates on disk (as if
    online)."""
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
    if "--read-only" in args or "--only" in args:
        # Not every MUST ran: never 0, which would read as conformant (exit 3, see
        # `aicp verify --help`).
        assert result.exit_code in (1, 3), result.output
    else:
        # 0 or 1 depends on the probes' verdicts on the emulator; 2 is a usage error.
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
    product = submission(world / "aicp-verify-results")  # v1.35/<product>/
    for path in ("PRODUCT.yaml", "results/aicp-junit.xml", "results/aicp-results.json",
                 "results/aicp-verify.log"):
        assert (product / path).is_file()
    data = yaml.safe_load((product / "PRODUCT.yaml").read_text())
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


@pytest.mark.parametrize("stack", ["myorg/dev", "myorg/aicp/dev"])
def test_a_fully_qualified_stack_name_is_the_stack_pulumi_names(world, stack):
    # Pulumi resolves ORG/NAME and ORG/PROJECT/NAME itself: aicp hands the name on whole,
    # and the run and cleanup work as for the short name.
    fake_pulumi(world / "bin", f'[ "$6" = {stack} ] && cat {world}/outputs.json && exit 0\n'
                               'echo "error: no stack named \'$6\' found" >&2; exit 255')
    result = invoke(["verify", "--stack", stack, "--read-only", "--output", "json"])
    # The reference platform fails a read-only MUST: the run ran, on the stack's cluster.
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"kubeconfig: stack {stack}\n" in result.output
    doc = json.loads((world / "aicp-verify-results" / "results" / "aicp-results.json").read_text())
    assert doc["cluster"]["stack"].startswith(f"{stack}: "), doc["cluster"]
    cleanup = invoke(["verify", "cleanup", "--stack", stack])
    assert cleanup.exit_code == 0, cleanup.output


def test_missing_pulumi_cli_is_one_line_and_exit_2(world, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    one_line_error(invoke(["verify", "--stack", "dev"]), r"pulumi CLI not found on PATH")


def test_no_network_for_the_template_is_one_line_naming_the_option(world, monkeypatch):
    monkeypatch.setenv("AICP_CHECKLIST_URL", "file:///nonexistent/AIConformance-{version}.yaml")
    one_line_error(invoke(["verify"]),
                   r"cannot download the checklist template .* pass --checklist-template PATH")


def test_read_only_exits_3_and_the_last_line_says_how_many_musts_ran(world, kubeapi_factory):
    # The conformant platform: the read-only probes pass, so only "not every MUST ran"
    # keeps the run from 0 (exit 0 would read as conformant).
    kube = kubeapi_factory("conformant-platform", minor="1.35")
    kube.settle()
    kubeconfig = kube.write_kubeconfig(world / "conformant.yaml")
    result = invoke(["verify", "--kubeconfig", str(kubeconfig), "--read-only", "--output",
                     "json"])
    assert result.exit_code == 3, result.output
    reports = world / "aicp-verify-results"
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("1/9 MUST ran (1 passed), 8 not run: not a conformance result, ")
    assert last.endswith(f" SHOULD not implemented — exit 3; reports: {reports}"), last
    doc = json.loads((reports / "results" / "aicp-results.json").read_text())
    assert doc["exitCode"] == 3
    assert doc["musts"] == {"total": 9, "ran": 1, "passed": 1, "allRan": False}
    assert doc["conformant"] is False
    assert doc["summary"]["MUST"] == {"NOT_RUN": 8, "PASS": 1}
    assert doc["summary"]["SHOULD"]["FAIL"] == 2  # the platform's two unimplemented SHOULDs


def iso_time(value) -> bool:
    return isinstance(value, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value) is not None


def test_results_json_has_one_time_format_one_duration_name_and_plain_keys(world):
    before = int(time.time() * 1000) / 1000  # as the report keeps it: milliseconds, truncated
    result = invoke(["verify", "--only", "accelerator_metrics,gpu_sharing", "--output", "json"])
    assert result.exit_code in (1, 3), result.output
    doc = json.loads((world / "aicp-verify-results" / "results" / "aicp-results.json").read_text())
    assert doc["aicpVersion"] == VERSION
    assert iso_time(doc["started"]) and iso_time(doc["finished"])
    started = datetime.fromisoformat(doc["started"]).timestamp()
    assert before <= started <= datetime.fromisoformat(doc["finished"]).timestamp()
    keys: set[str] = set()

    def walk(node):
        # Keys under these are data (image names, a probe's observations, verdict counts).
        if isinstance(node, dict):
            for key, value in node.items():
                keys.add(key)
                if key == "started":
                    assert value is None or iso_time(value), (key, value)
                if key not in ("images", "observations", "summary"):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    assert all(re.fullmatch(r"[a-z][A-Za-z]*", key) for key in keys), sorted(keys)
    assert not {"duration", "duration_s", "time"} & keys and "durationSeconds" in keys
    ran = [r for r in doc["requirements"] if r["verdict"] not in ("NOT_RUN", "MANUAL")]
    for r in ran:  # a probe's start is before its end, not its end
        begun = datetime.fromisoformat(r["started"]).timestamp()
        assert started <= begun and begun + r["durationSeconds"] <= datetime.fromisoformat(
            doc["finished"]).timestamp() + 0.01
    assert set(doc["summary"]) == {"MUST", "SHOULD"}
    assert sum(doc["summary"]["MUST"].values()) == doc["musts"]["total"] == 9


def test_version_short_help_and_shell_completion():
    result = invoke(["--version"])
    assert (result.exit_code, result.output) == (0, f"aicp {VERSION}\n")
    for args in (["-h"], ["verify", "-h"], ["verify", "cleanup", "-h"], ["plan", "-h"]):
        result = invoke(args)
        assert result.exit_code == 0 and "Usage: aicp" in result.output, args
    assert "--install-completion" in invoke(["-h"]).output
    completion = invoke(["--show-completion", "bash"])
    assert completion.exit_code == 0 and "_AICP_COMPLETE" in completion.output
    verify_help = invoke(["verify", "-h"]).output
    for code in ("0    every MUST ran and passed", "3    no MUST failed, but not every MUST",
                 "130  interrupted by Ctrl-C, SIGTERM or SIGHUP"):
        assert code in verify_help


def test_the_version_is_in_the_settings_and_every_report(world):
    result = invoke(["verify", "--only", "accelerator_metrics", "--output", "json,junit"])
    assert f"aicp: {VERSION}" in result.output
    junit = (world / "aicp-verify-results" / "results" / "aicp-junit.xml").read_text()
    assert f'<property name="aicp" value="{VERSION}"' in junit
    doc = json.loads((world / "aicp-verify-results" / "results" / "aicp-results.json").read_text())
    assert doc["cluster"]["aicp"] == VERSION
    assert doc["cluster"]["runId"].startswith(doc["runId"])
    assert "busybox" in doc["cluster"]["images"]


def exact_error(result, line: str, code: int = 2) -> None:
    out = result.output
    assert result.exit_code == code, out
    assert [x for x in out.splitlines() if x.startswith("error:")] == [line], out
    assert "Traceback" not in out and "ERROR:root" not in out


def kubeconfig_for(path, server: str, user: dict) -> None:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))


class HtmlLogin:
    """A proxy that answers every request with its login page (HTTP 200, text/html)."""

    def __enter__(self):
        import http.server

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                body = b"<!DOCTYPE html><html><title>Sign in - Corp VPN</title></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def bad_kubeconfigs(world):
    """name → (kubeconfig path, exact error line) for kubeconfigs that must stop the run."""
    cases = {}
    (world / "list.yaml").write_text("- just\n- a list\n")
    cases["a YAML list"] = ("list.yaml", "error: kubeconfig list.yaml has no contexts")
    (world / "latin1.yaml").write_bytes(b"clusters: [{name: caf\xe9}]\n")
    cases["non-UTF-8 bytes"] = ("latin1.yaml", "error: kubeconfig latin1.yaml is not readable "
                                "YAML ('utf-8' codec can't decode byte 0xe9 in position 21: "
                                "invalid continuation byte)")
    kubeconfig_for(world / "exec.yaml", "https://127.0.0.1:1", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "sh",
        "args": ["-c", "echo 'token expired: run aws sso login' >&2; exit 1"]}})
    cases["a failing exec plugin"] = (
        "exec.yaml", "error: kubeconfig exec.yaml, context c, user u: the exec credential plugin "
        "'sh' failed (process returned 1. token expired: run aws sso login): fix it or log in "
        "again")
    kubeconfig_for(world / "noexec.yaml", "https://127.0.0.1:1", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws-iam-nope"}})
    cases["a missing exec plugin"] = (
        "noexec.yaml", "error: kubeconfig noexec.yaml, context c, user u: the exec credential "
        "plugin 'aws-iam-nope' failed ([Errno 2] No such file or directory: 'aws-iam-nope'): "
        "fix it or log in again")
    return cases


def test_a_token_with_a_trailing_newline_is_accepted_as_kubectl_accepts_it(world,
                                                                          kubeapi_factory):
    # What a YAML block scalar (token: |) or a pasted token file gives: kubectl trims it.
    kube = kubeapi_factory("conformant-platform", minor="1.35")
    kube.settle()
    (world / "token").write_text("emulator\n")
    kubeconfig_for(world / "file.yaml", kube.url, {"tokenFile": str(world / "token")})
    kubeconfig_for(world / "block.yaml", kube.url, {"token": "PASTED"})
    block = (world / "block.yaml").read_text().replace("token: PASTED",
                                                       "token: |\n      emulator")
    (world / "block.yaml").write_text(block)
    assert yaml.safe_load(block)["users"][0]["user"]["token"] == "emulator\n"
    for name in ("block.yaml", "file.yaml"):
        result = invoke(["verify", "--kubeconfig", name, "--read-only", "--output-dir",
                         f"out-{name}"])
        assert result.exit_code == 3, result.output
        assert "Traceback" not in result.output
        cleanup = invoke(["verify", "cleanup", "--kubeconfig", name])
        assert cleanup.exit_code == 0, cleanup.output
        assert "Traceback" not in cleanup.output


@pytest.mark.parametrize("user, line", [
    ({"token": "emu\nlator"}, "error: kubeconfig bad-user.yaml, context c, user u: the token "
     "has a line break or control character inside it, which no HTTP header can carry: "
     "paste the token again"),
    ({"token": ["a", "list"]}, "error: kubeconfig bad-user.yaml, context c, user u: token "
     "must be a string, not a list: quote the token"),
    ({"tokenFile": "no-such-token"}, "error: kubeconfig bad-user.yaml, context c, user u: "
     "cannot read tokenFile no-such-token (No such file or directory): fix the path"),
    ({"token": "   \n"}, "error: kubeconfig bad-user.yaml, context c, user u: the token "
     "is empty: paste the token again"),
])
def test_every_other_bad_token_is_one_line_naming_the_user_entry(world, user, line):
    kubeconfig_for(world / "bad-user.yaml", "https://127.0.0.1:1", user)
    for args in (["verify", "--kubeconfig", "bad-user.yaml", "--output", "json"],
                 ["verify", "cleanup", "--kubeconfig", "bad-user.yaml"]):
        exact_error(invoke(args), line)


@pytest.mark.parametrize("case", ["a YAML list", "non-UTF-8 bytes", "a failing exec plugin",
                                  "a missing exec plugin"])
def test_bad_kubeconfigs_are_one_exact_line_and_exit_2(world, case):
    path, line = bad_kubeconfigs(world)[case]
    for args in (["verify", "--kubeconfig", path, "--output", "json"],
                 ["verify", "cleanup", "--kubeconfig", path]):
        exact_error(invoke(args), line)
    assert not (world / "aicp-verify-results").exists()  # nothing half-done


def test_a_server_answering_a_login_page_is_one_line_and_exit_2(world):
    with HtmlLogin() as server:
        kubeconfig_for(world / "proxy.yaml", server, {"token": "t"})
        line = (f"error: cluster {server} answered GET /version with text/html, not the "
                "Kubernetes API ('<!DOCTYPE html><html><title>Sign in - Corp VPN</title></html'"
                "...): a proxy or VPN login page? check the kubeconfig's server and log in to "
                "the proxy")
        exact_error(invoke(["verify", "--kubeconfig", "proxy.yaml"]), line)
        exact_error(invoke(["verify", "cleanup", "--kubeconfig", "proxy.yaml"]), line)


@pytest.mark.parametrize("output_dir, line", [
    ("kubeconfig.yaml/out", "error: --output-dir kubeconfig.yaml/out: {world}/kubeconfig.yaml "
                            "is a file, not a directory: choose another --output-dir"),
    ("kubeconfig.yaml", "error: --output-dir kubeconfig.yaml: {world}/kubeconfig.yaml is a "
                        "file, not a directory: choose another --output-dir"),
    ("/sys/aicp-results", "error: --output-dir /sys/aicp-results: cannot write in /sys "
                          "(Permission denied): choose a writable --output-dir"),
])
def test_an_unwritable_output_dir_is_found_before_any_probe(world, kubeapi_factory, output_dir,
                                                             line):
    if output_dir.startswith("/sys") and os.access("/sys", os.W_OK) and os.getuid() != 0:
        pytest.skip("/sys is writable here")
    requests = world / "kubeconfig.yaml"
    result = invoke(["verify", "--output", "json", "--output-dir", output_dir])
    exact_error(result, line.format(world=world))
    assert "cluster:" not in result.output  # stopped before connecting, let alone probing
    assert requests.is_file()


@pytest.mark.parametrize("args, line", [
    (["--concurrency", "0"], "error: --concurrency must be at least 1"),
    (["--timeout", "-1"], "error: --timeout -1: give a positive number of seconds"),
    # nan compared false with every bound: the run waited forever (#27, "Also").
    (["--timeout", "nan"], "error: --timeout nan: give a positive number of seconds"),
    (["--probe-timeout", "inf"], "error: --probe-timeout inf: give a positive number of "
                                 "seconds"),
    # An empty value vanished in the comma split: `--only ''` ran every probe.
    (["--only", ""], "error: --only is empty: name at least one value, or leave --only out"),
    (["--skip", " , "], "error: --skip is empty: name at least one value, or leave --skip "
                        "out"),
    (["--output", ""], "error: --output is empty: name at least one value, or leave --output "
                       "out"),
    (["--only", "dra_support", "--skip", "dra_support"],
     "error: dra_support is in both --only and --skip"),
    (["--output", "html"], "error: --output html: choose from json, junit, checklist"),
    (["--run-id", "Not_Valid"], "error: --run-id 'Not_Valid': use up to 20 lowercase letters, "
                                "digits and dashes (it becomes a label value and a namespace "
                                "name)"),
])
def test_bad_options_are_one_exact_line_and_exit_2(world, args, line):
    exact_error(invoke(["verify", *args]), line)


def test_cleanup_with_a_bad_run_id_is_one_line(world):
    exact_error(invoke(["verify", "cleanup", "--run-id", "A B"]),
                "error: --run-id 'A B' is not a run id")


def test_an_empty_output_dir_is_refused_before_any_probe(world):
    # Path("") is ".": an empty value once meant the current directory, silently.
    result = invoke(["verify", "--output", "json", "--output-dir", ""])
    exact_error(result, "error: --output-dir is empty: name a folder (--output-dir . for the "
                        "current one)")
    assert "cluster:" not in result.output
    assert not (world / "results").exists()


def test_a_users_own_files_where_aicp_writes_are_refused_and_never_moved(world):
    out = world / "thesis"
    (out / "results").mkdir(parents=True)
    (out / "results" / "thesis.txt").write_text("three years of work")
    (out / "PRODUCT.yaml").write_text("mine: true\n")
    result = invoke(["verify", "--only", "accelerator_metrics", "--output", "json",
                     "--output-dir", "thesis"])
    exact_error(result, "error: --output-dir thesis holds files aicp did not write: "
                        "PRODUCT.yaml, results/thesis.txt: move them out of it or choose "
                        "another --output-dir")
    assert "cluster:" not in result.output  # refused before connecting, let alone probing
    assert (out / "results" / "thesis.txt").read_text() == "three years of work"
    assert (out / "PRODUCT.yaml").read_text() == "mine: true\n"
    assert [p.name for p in world.iterdir() if ".previous-" in p.name] == []


def test_a_previous_run_is_moved_aside_by_its_manifest_and_nothing_else(world):
    first = invoke(["verify", "--only", "accelerator_metrics", "--output", "json"])
    assert first.exit_code in (1, 3), first.output
    out = world / "aicp-verify-results"
    (out / "notes.md").write_text("mine")  # not where aicp writes: stays, never moved
    second = invoke(["verify", "--only", "accelerator_metrics", "--output", "json"])
    assert second.exit_code == first.exit_code, second.output
    [aside] = [p for p in world.iterdir() if p.name.startswith("aicp-verify-results.previous-")]
    assert (aside / "results" / "aicp-results.json").is_file()
    assert sorted(p.name for p in aside.iterdir()) == [".aicp-files", "evidence", "results"]
    assert (out / "notes.md").read_text() == "mine"
    assert (out / "results" / "aicp-results.json").is_file()


def test_a_full_disk_loses_no_verdict_leaves_no_partial_file_and_keeps_the_exit_code(
        world, monkeypatch):
    from aicp.verify.reports import bundle

    real = getattr(bundle, "_fill", None)

    def fill(handle, data):  # the disk fills up half-way through aicp-junit.xml
        if ".aicp-junit.xml." in handle.name:
            handle.write(data[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        assert real is not None
        real(handle, data)

    # raising=False: on a build without atomic writes the patch is inert and the test fails
    # on what it checks, not on the patch.
    monkeypatch.setattr(bundle, "_fill", fill, raising=False)
    result = invoke(["verify", "--only", "accelerator_metrics", "--output", "json,junit"])
    out = world / "aicp-verify-results"
    doc = json.loads((out / "results" / "aicp-results.json").read_text())  # written in full
    code = doc["exitCode"]
    assert code in (1, 3)
    assert result.exit_code == code, result.output  # what the probes found, not "lost"
    assert "Traceback" not in result.output
    assert "accelerator_metrics" in result.output  # the verdicts are on stdout
    assert not (out / "results" / "aicp-junit.xml").exists()  # no half-written report
    assert not [p for p in out.rglob("*.tmp")]
    written = [p for p in out.rglob("*") if p.is_file() and p.name != ".aicp-files"]
    assert "results/aicp-junit.xml\n" in (out / ".aicp-files").read_text()  # listed: set aside
    last = result.output.strip().splitlines()[-1]
    assert last.endswith(
        f" — exit {code}; reports NOT saved: could not write results/aicp-junit.xml in {out} "
        f"(No space left on device); {len(written)} other files written; "
        "the verdicts above stand"), last
