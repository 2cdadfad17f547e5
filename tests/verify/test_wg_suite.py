"""``aicp verify --wg-suite``: the working group's suite (kubernetes-sigs/ai-conformance
``test/``) run with flags derived from the stack and the cluster, its files kept untouched.

No Go toolchain exists here: a stand-in ``go`` on PATH replays the real artifacts of GKE's
v1.37 run (``../shared/fixtures/wg-suite-gke-v1.37/``, results.json as ``go test -json``
printed it), unchanged, with one test made to fail, or with the autoscaling test skipped.
It records the arguments it was given, so the tests see the flags the real ``go`` would get.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from aicp.components.contract import GpuPoolRequest, resolve_pool
from aicp.verify import session
from aicp.verify.wgsuite import COMMIT, flags
from aicp.verify.wgsuite.run import SuiteError, checkout_commit, events_of, preflight
from tests.verify.conftest import require_shared, submission
from tests.verify.test_conformant_platform import FAST

FIXTURE = ("fixtures", "wg-suite-gke-v1.37")
ROOT = Path(__file__).resolve().parents[2]

# The stand-in: prints the fixture's results.json (changed as REPLAY says), exits as go test
# would (1 when a test failed), and writes its arguments beside itself.
GO = '''#!{python}
import json, sys
from pathlib import Path
here = Path(__file__).parent
(here / "args.json").write_text(json.dumps(sys.argv[1:]))
for arg in sys.argv[1:]:
    if arg.startswith("-kubeconfig="):
        (here / "kubeconfig.seen").write_text(Path(arg[12:]).read_text())
replay, lines = "{replay}", Path("{results}").read_text().splitlines()
out, failed = [], False
for line in lines:
    event = json.loads(line)
    before = dict(event)
    test, action = event.get("Test", ""), event.get("Action")
    if replay == "fail" and test.startswith("TestGangScheduling") and action == "pass":
        event["Action"], failed = "fail", True
    if replay == "fail" and "--- PASS: TestGangScheduling" in event.get("Output", ""):
        event["Output"] = event["Output"].replace("--- PASS", "--- FAIL")
    if replay == "skip" and test == "TestAcceleratorClusterAutoscaling":
        if action == "output" and event["Output"].startswith("    "):
            continue  # a skipped test logs only why
        if action == "pass":
            out.append(json.dumps(dict(event, Action="output", Output="    autoscaling_test.go:"
                                       "71: -autoscaler-node-pool-label is unset\\n")))
            event["Action"] = "skip"
        if "--- PASS" in event.get("Output", ""):
            event["Output"] = event["Output"].replace("--- PASS", "--- SKIP")
    if not test and action == "pass" and failed:
        event["Action"] = "fail"
    out.append(line if event == before else json.dumps(event))
print("\\n".join(out))
sys.exit(1 if failed else 0)
'''
# gotestsum, as GKE ran it (--junitfile junit.xml --raw-command -- cat results.json): the
# stand-in writes GKE's junit.xml, which renders the unchanged replay.
GOTESTSUM = '''#!/bin/sh
cp "{junit}" "$2"
'''


def suite_source(tmp_path: Path, commit: str = COMMIT) -> Path:
    """A checkout of the suite as aicp reads it: .git/HEAD detached at ``commit``."""
    source = tmp_path / "ai-conformance"
    (source / ".git").mkdir(parents=True)
    (source / ".git" / "HEAD").write_text(commit + "\n")
    (source / "test").mkdir()
    return source


def stand_ins(tmp_path: Path, monkeypatch, replay: str = "pass", gotestsum: bool = True) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(GO.format(python=sys.executable, replay=replay,
                            results=require_shared(*FIXTURE, "results.json")))
    go.chmod(0o755)
    if gotestsum:
        tool = bin_dir / "gotestsum"
        tool.write_text(GOTESTSUM.format(junit=require_shared(*FIXTURE, "junit.xml")))
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return bin_dir


def run_verify(kubeconfig: Path, folder: Path, tmp_path: Path, **options) -> tuple[int, str]:
    log = tmp_path / f"{folder.name}.log"
    source = tmp_path / "ai-conformance"
    opts = session.Options(
        kubeconfig=kubeconfig, output=options.pop("output", ["checklist"]), output_dir=folder,
        checklist_template=require_shared("conformance", "AIConformance-1.37.yaml"),
        run_id=options.pop("run_id", "wg"), wg_suite=True,
        wg_suite_source=source if source.is_dir() else suite_source(tmp_path), **options)
    with log.open("w") as out:
        code = session.run(opts, Console(file=out, width=300))
    return code, log.read_text()


# Flags -------------------------------------------------------------------------------------
def example_pools(target: str) -> list[dict]:
    """The example stack's GPU pools as its outputs carry them (``GpuPool.export``)."""
    config = yaml.safe_load((ROOT / f"Pulumi.{target}.yaml").read_text())["config"]
    return [resolve_pool(target, GpuPoolRequest(
        p["name"], p["accelerator"], p["maxNodes"], p.get("minNodes", 0),
        p.get("instanceType"), allocator=p.get("allocator", "dra"),
        gpus_per_node=p.get("gpusPerNode"))).export() for p in config["aicp:gpuPools"]]


# The autoscaler each target's cluster component reports (components/<cloud>.py).
AUTOSCALER = {"aws": "cluster-autoscaler", "gcp": "gke", "azure": "aks", "onprem": "none"}


def facts_of(kubeapi_factory, tmp_path, scenario: str, **options) -> flags.Facts:
    from aicp.verify.kube import connect

    kube = kubeapi_factory(scenario, **options)
    kube.settle()
    return flags.discover(connect(kube.write_kubeconfig(tmp_path / f"{scenario}.yaml")))


@pytest.mark.parametrize(("target", "pool_label"), [
    ("aws", "aicp.dev/gpu-pool=l4"),  # h100 nodes carry 8 GPUs: the suite needs one a node
    ("gcp", None),  # both pools scale from zero: the suite needs minNodes >= 1
    ("azure", "aicp.dev/gpu-pool=t4"),
    ("onprem", None),  # no node autoscaler
])
def test_flags_per_example_stack_name_their_source(target, pool_label, kubeapi_factory,
                                                   tmp_path):
    facts = facts_of(kubeapi_factory, tmp_path, "conformant-platform", minor="1.37")
    found = {f.name: f for f in flags.derive(
        facts, {"gpuPools": example_pools(target), "autoscaler": AUTOSCALER[target]},
        target)}
    assert [f.value for f in found.values()] == [
        "nvidia", "dra", "ai-workloads", "kueue.x-k8s.io/queue-name=aicp", pool_label,
        "gvisor"]
    assert found["allocation-mode"].source == (
        f"stack {target} output gpuPools[].allocator dra; cluster: DeviceClass "
        "gpu.nvidia.com and ResourceSlices of driver gpu.nvidia.com")
    assert found["gang-job-labels"].source == "cluster: LocalQueue ai-workloads/aicp " \
                                              "(kueue.x-k8s.io/v1beta2)"
    assert found["sandbox-runtime-class"].source == "cluster: RuntimeClass gvisor (handler runsc)"
    label = found["autoscaler-node-pool-label"]
    if pool_label:
        assert label.source.startswith(f"stack {target} output gpuPools[") and \
            f"autoscaler {AUTOSCALER[target]}" in label.source
    else:
        assert label.source.startswith("unset: ") and "skips its autoscaling test" in \
            label.source


def test_flags_on_a_device_plugin_cluster_aicp_did_not_build(kubeapi_factory, tmp_path):
    facts = facts_of(kubeapi_factory, tmp_path, "gpu-device-plugin-only")
    found = {f.name: f for f in flags.derive(facts)}
    assert found["allocation-mode"].value == "device-plugin"
    assert found["allocation-mode"].source.startswith("cluster: nodes advertise nvidia.com/gpu")
    assert found["accelerator-type"].value == "nvidia"
    # Nothing to read a pool, a queue or a sandbox from: unset, each saying why.
    for name in ("autoscaler-node-pool-label", "gang-scheduler-namespace",
                 "gang-job-labels", "sandbox-runtime-class"):
        assert found[name].value is None and found[name].source.startswith("unset: "), name
    assert "no stack" in found["autoscaler-node-pool-label"].source


def test_the_registry_mirror_serves_the_suites_sandbox_image(kubeapi_factory, tmp_path):
    found = flags.derive(facts_of(kubeapi_factory, tmp_path, "empty"),
                         mirror="registry.local:5000/hub")
    assert found[-1] == flags.Flag(
        "sandbox-image", "registry.local:5000/hub/library/busybox",
        "--registry-mirror registry.local:5000/hub: the suite's default "
        "docker.io/library/busybox")
    assert "sandbox-image" not in {f.name for f in flags.derive(flags.Facts())}


def test_flags_on_an_empty_cluster_leave_the_suite_to_detect(kubeapi_factory, tmp_path):
    found = {f.name: f for f in flags.derive(facts_of(kubeapi_factory, tmp_path, "empty"))}
    assert found["allocation-mode"].value == "auto"
    assert found["accelerator-type"].value is None


# Preflight ---------------------------------------------------------------------------------
def test_a_checkout_at_another_commit_or_without_go_is_refused_before_any_probe(
        tmp_path, monkeypatch, kubeapi_factory, capsys):
    other = suite_source(tmp_path / "other", "0" * 40)
    with pytest.raises(SuiteError, match=f"has {'0' * 40} checked out, not the pinned "
                       f"{COMMIT}: run `git -C .* checkout {COMMIT}`"):
        preflight(other)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(SuiteError, match="^--wg-suite local needs Go on PATH"):
        preflight(suite_source(tmp_path))
    kube = kubeapi_factory("empty", minor="1.37")
    code, _ = run_verify(kube.write_kubeconfig(tmp_path / "kc.yaml"), tmp_path / "out",
                         tmp_path)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --wg-suite local needs Go on PATH"), err
    assert not (tmp_path / "out").exists()


def test_the_suite_gets_the_runs_context_through_a_private_copy_only_when_needed(
        tmp_path, monkeypatch):
    from aicp.verify.wgsuite.run import run_local

    bin_dir = stand_ins(tmp_path, monkeypatch, gotestsum=False)
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "a",
              "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}},
                           {"name": "b", "context": {"cluster": "c", "user": "u"}}],
              "clusters": [{"name": "c", "cluster": {"server": "https://k:6443"}}],
              "users": [{"name": "u", "user": {"tokenFile": "token"}}]}
    user_file = tmp_path / "kubeconfig.yaml"  # beside its relative tokenFile
    user_file.write_text(yaml.safe_dump(config))
    source = suite_source(tmp_path)
    run = run_local(source, str(bin_dir / "go"), [], config, "a", user_file)
    assert json.loads((bin_dir / "args.json").read_text())[-1] == f"-kubeconfig={user_file}"
    assert run.passed and run.command.endswith("-kubeconfig=(a path on the machine that ran "
                                               "it)")
    run_local(source, str(bin_dir / "go"), [], config, "b", user_file)
    copy = json.loads((bin_dir / "args.json").read_text())[-1].removeprefix("-kubeconfig=")
    assert copy != str(user_file) and not Path(copy).exists()  # private, and removed after
    assert yaml.safe_load((bin_dir / "kubeconfig.seen").read_text())["current-context"] == "b"


def test_the_checkout_commit_is_read_through_a_branch_ref(tmp_path):
    source = suite_source(tmp_path)
    (source / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (source / ".git" / "packed-refs").write_text(f"# pack-refs\n{COMMIT} refs/heads/main\n")
    assert checkout_commit(source) == COMMIT


# Replays -----------------------------------------------------------------------------------
def test_a_failing_suite_run_is_quarantined_beside_the_folder_never_in_it(
        kubeapi_factory, tmp_path, monkeypatch):
    stand_ins(tmp_path, monkeypatch, replay="fail", gotestsum=False)
    kube = kubeapi_factory("conformant-platform", minor="1.37")
    kube.settle()
    out = tmp_path / "out"
    code, log = run_verify(kube.write_kubeconfig(tmp_path / "kc.yaml"), out, tmp_path,
                           only=["gang_scheduling"], probe_timeout=30.0, timing=FAST)
    folder = submission(out)
    quarantine = tmp_path / "out.wg-suite-failed-wg"  # beside --output-dir, never in it
    assert "wg-suite: exit 1: " in log and f"quarantined in {quarantine}" in log, log
    assert not (folder / "wg-suite").exists()
    assert not [p for p in out.rglob("*") if p.name in ("junit.xml", "results.json",
                                                        "e2e.log")]
    kept = events_of((quarantine / "results.json").read_bytes())
    assert any(e.get("Action") == "fail" and e.get("Test") == "TestGangScheduling"
               for e in kept)
    page = (folder / "evidence" / "gang_scheduling" / "README.md").read_text()
    assert ("The suite's run failed (3 failing tests); its files are kept out of this "
            "submission in `out.wg-suite-failed-wg` beside the reports folder "
            "(--output-dir).") in page
    product = yaml.safe_load((folder / "PRODUCT.yaml").read_text())
    entries = [e for items in product["spec"].values() for i in items
               for e in i.get("evidence") or []]
    assert not [e for e in entries if "wg-suite" in e]
    assert "3 tests failed: see `e2e.log`" in (quarantine / "README.md").read_text()


def test_a_skipped_suite_test_is_reported_with_the_suites_reason_and_not_linked(
        kubeapi_factory, tmp_path, monkeypatch):
    stand_ins(tmp_path, monkeypatch, replay="skip", gotestsum=False)
    kube = kubeapi_factory("conformant-platform", minor="1.37")
    kube.settle()
    out = tmp_path / "out"
    code, log = run_verify(kube.write_kubeconfig(tmp_path / "kc.yaml"), out, tmp_path,
                           only=["cluster_autoscaling"], probe_timeout=30.0, timing=FAST)
    folder = submission(out)
    assert "wg-suite: exit 0: 135 passed, 0 failed, 1 skipped" in log, log
    page = (folder / "evidence" / "cluster_autoscaling" / "README.md").read_text()
    assert ("The suite skipped this requirement's test: -autoscaler-node-pool-label is "
            "unset. Its files are not linked from this id.") in page
    suite_page = (folder / "evidence" / "wg-suite" / "README.md").read_text()
    assert "| cluster_autoscaling | skipped | -autoscaler-node-pool-label is unset |" in \
        suite_page
    assert "junit.xml not made: gotestsum is not on PATH" in suite_page
    product = yaml.safe_load((folder / "PRODUCT.yaml").read_text())
    items = {i["id"]: i for items in product["spec"].values() for i in items}
    assert not [e for e in items["cluster_autoscaling"].get("evidence") or []
                if "wg-suite" in e]
    assert (folder / "wg-suite" / "results.json").read_bytes().count(b'"Action": "skip"') \
        == 1


# In the cluster as a Job (--wg-suite-mode job) ---------------------------------------------
# The emulated kubelet runs the Job's own script with sh, as the container would: a stand-in
# ``git`` (it records what it was asked to fetch) and the stand-in ``go`` above, which replays
# GKE's results.json. The pod's log is what the script printed; its exit code the script's.
GIT = '''#!/bin/sh
echo "$@" >> "{record}"
case "$1" in
  init) mkdir -p "$3" ;;
  fetch) [ "{fetch}" = ok ] || {{ echo "fatal: unable to access the repository" >&2; exit 128; }} ;;
  rev-parse) echo {commit} ;;
esac
'''


def job_world(kubeapi_factory, tmp_path, monkeypatch, replay="pass", fetch="ok"):
    from tests.kubeapi.controllers.kubelet import kubelet

    bin_dir = stand_ins(tmp_path, monkeypatch, replay=replay, gotestsum=False)
    git = bin_dir / "git"
    git.write_text(GIT.format(record=tmp_path / "git.args", fetch=fetch, commit=COMMIT))
    git.chmod(0o755)
    kube = kubeapi_factory("conformant-platform", minor="1.37")
    kube.settle()
    played: dict[str, dict] = {}
    hooks = kubelet(kube)
    before, before_code = hooks.logs, hooks.exit_code

    def logs(pod, container, world):
        if container != "suite":
            return before(pod, container, world)
        import subprocess

        # One stream, as the container runtime keeps stdout and stderr in one log.
        done = subprocess.run(pod["spec"]["containers"][0]["command"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120, cwd=tmp_path,
                              env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
        played[pod["metadata"]["uid"]] = {"pod": pod, "code": done.returncode}
        return done.stdout

    hooks.logs = logs
    hooks.exit_code = lambda pod: played.get(pod["metadata"]["uid"], {}).get(
        "code", before_code(pod))
    return kube, bin_dir, played


def run_job_verify(kube, folder, tmp_path, **options):
    log = tmp_path / f"{folder.name}.log"
    opts = session.Options(
        kubeconfig=kube.write_kubeconfig(tmp_path / "kc.yaml"),
        output=options.pop("output", ["checklist"]), output_dir=folder,
        checklist_template=require_shared("conformance", "AIConformance-1.37.yaml"),
        run_id="wg", wg_suite=True, wg_suite_mode="job", probe_timeout=30.0, timing=FAST,
        **options)
    with log.open("w") as out:
        code = session.run(opts, Console(file=out, width=300))
    return code, log.read_text()


def leftovers(kube) -> list[str]:
    from aicp.verify.probe import RUN_LABEL

    return [f"{ref}/{x['metadata']['name']}" for ref in (
        "namespaces", "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io", "jobs.batch", "serviceaccounts")
        for x in kube.list(ref, labels=RUN_LABEL)]


def test_the_suite_runs_in_the_cluster_as_a_job_and_its_files_come_back_untouched(
        kubeapi_factory, tmp_path, monkeypatch):
    kube, bin_dir, played = job_world(kubeapi_factory, tmp_path, monkeypatch)
    out = tmp_path / "out"
    code, log = run_job_verify(kube, out, tmp_path, only=["gang_scheduling"],
                               registry_mirror="registry.local:5000/hub")
    folder = submission(out)
    assert "wg-suite: exit 0: 136 passed, 0 failed, 0 skipped" in log, log
    # What ran: the pinned commit fetched from the suite's repository, the mirrored Go image,
    # the derived flags and no -kubeconfig (the pod's ServiceAccount), under a run label.
    assert f"fetch -q --depth 1 https://github.com/kubernetes-sigs/ai-conformance {COMMIT}" \
        in (tmp_path / "git.args").read_text()
    (pod,) = [p["pod"] for p in played.values()]
    assert pod["spec"]["containers"][0]["image"] == \
        "registry.local:5000/hub/library/golang:1.25.9-bookworm"
    assert pod["spec"]["serviceAccountName"] == "aicp-wg-suite"
    assert pod["metadata"]["namespace"] == "aicp-verify-wg-wg-suite"
    args = json.loads((bin_dir / "args.json").read_text())
    assert args[:6] == ["test", "-v", "-timeout", "75m", "./test", "-json"]
    assert "-gang-job-labels=kueue.x-k8s.io/queue-name=aicp" in args
    assert "-sandbox-image=registry.local:5000/hub/library/busybox" in args
    assert not [a for a in args if a.startswith("-kubeconfig")]
    # results.json byte for byte as go printed it, through the log's gzip+base64 leg.
    assert (folder / "wg-suite" / "results.json").read_bytes() == \
        require_shared(*FIXTURE, "results.json").read_bytes()
    assert (folder / "wg-suite" / "e2e.log").read_bytes() == \
        require_shared(*FIXTURE, "e2e.log").read_bytes()
    page = (folder / "evidence" / "wg-suite" / "README.md").read_text()
    assert "- Ran: in the cluster as a Job (`--wg-suite-mode job`) from image " \
           "`registry.local:5000/hub/library/golang:1.25.9-bookworm`" in page
    assert "| -kubeconfig | (unset) | unset: in the cluster the suite uses the Job's " \
           "ServiceAccount aicp-wg-suite (in-cluster config) |" in page
    manifest = json.loads((folder / "results" / "aicp-manifest.json").read_text())
    assert manifest["suite"]["mode"] == "job" and manifest["suite"]["passed"] is True
    assert leftovers(kube) == []


def test_a_failing_suite_job_is_quarantined_and_a_skipped_test_keeps_its_reason(
        kubeapi_factory, tmp_path, monkeypatch):
    kube, _, _ = job_world(kubeapi_factory, tmp_path, monkeypatch, replay="fail")
    out = tmp_path / "out"
    code, log = run_job_verify(kube, out, tmp_path, only=["gang_scheduling"])
    quarantine = tmp_path / "out.wg-suite-failed-wg"
    assert "wg-suite: exit 1: " in log and f"quarantined in {quarantine}" in log, log
    assert not (submission(out) / "wg-suite").exists()
    assert any(e.get("Action") == "fail" and e.get("Test") == "TestGangScheduling"
               for e in events_of((quarantine / "results.json").read_bytes()))
    assert leftovers(kube) == []

    (tmp_path / "skip").mkdir()
    kube, _, _ = job_world(kubeapi_factory, tmp_path / "skip", monkeypatch, replay="skip")
    out = tmp_path / "skip" / "out"
    code, log = run_job_verify(kube, out, tmp_path / "skip", only=["cluster_autoscaling"])
    folder = submission(out)
    assert "wg-suite: exit 0: 135 passed, 0 failed, 1 skipped" in log, log
    suite_page = (folder / "evidence" / "wg-suite" / "README.md").read_text()
    assert "| cluster_autoscaling | skipped | -autoscaler-node-pool-label is unset |" in \
        suite_page


def test_a_job_that_cannot_fetch_the_suite_is_a_failed_run_saying_why(
        kubeapi_factory, tmp_path, monkeypatch):
    kube, _, _ = job_world(kubeapi_factory, tmp_path, monkeypatch, fetch="refused")
    out = tmp_path / "out"
    code, log = run_job_verify(kube, out, tmp_path, only=["gang_scheduling"])
    assert "wg-suite: exit 3: 0 passed, 0 failed, 0 skipped" in log, log
    page = (tmp_path / "out.wg-suite-failed-wg" / "README.md").read_text()
    assert "the Job printed no results.json: aicp: fetching the suite failed" in page
    assert not (submission(out) / "wg-suite").exists() and leftovers(kube) == []


def test_ctrl_c_while_the_suite_job_runs_deletes_everything_it_created(
        kubeapi_factory, tmp_path, monkeypatch):
    from aicp.verify.kube import connect
    from aicp.verify.probe import Settings
    from aicp.verify.wgsuite.job import run_job
    from tests.kubeapi.controllers.kubelet import kubelet

    kube, _, played = job_world(kubeapi_factory, tmp_path, monkeypatch)
    kubelet(kube).completes = lambda pod: False  # the Job's pod never ends on its own
    client = connect(kube.write_kubeconfig(tmp_path / "kc.yaml"))
    polls = []

    def interrupted():  # Ctrl-C arrives once the Job exists and was polled once
        polls.append(1)
        return "SIGINT" if len(polls) > 1 else None

    run = run_job(client, Settings("int1", "", timing=FAST), [], None, interrupted)
    assert run.returncode == 130 and not run.passed
    assert any(n.startswith("the suite's Job was stopped (SIGINT") for n in run.notes), \
        run.notes
    assert leftovers(kube) == []


def test_a_suite_job_out_of_time_is_stopped_and_deleted(kubeapi_factory, tmp_path,
                                                         monkeypatch):
    from aicp.verify.kube import connect
    from aicp.verify.probe import Settings, Timing
    from aicp.verify.wgsuite.job import run_job
    from tests.kubeapi.controllers.kubelet import kubelet

    kube, _, _ = job_world(kubeapi_factory, tmp_path, monkeypatch)
    kubelet(kube).completes = lambda pod: False  # the suite never ends
    client = connect(kube.write_kubeconfig(tmp_path / "kc.yaml"))
    # The start phase gets room (the pod starts in the emulator at once, but a loaded
    # machine may take a while), so only the suite phase can run out of time here.
    short = Timing(timeout=20.0, poll=0.05, overrides={"wg_suite.start_timeout": 20.0,
                                                       "wg_suite.suite_timeout": 0.2})
    run = run_job(client, Settings("late1", "", timing=short), [], None)
    assert run.returncode == 124 and not run.passed
    assert any("out of time" in n and "the Job did not finish within 0.2 s" in n
               for n in run.notes), run.notes
    assert leftovers(kube) == []


def test_a_suite_job_whose_image_cannot_be_pulled_says_so_within_its_start_time(
        kubeapi_factory, tmp_path, monkeypatch):
    from aicp.verify.kube import connect
    from aicp.verify.probe import Settings, Timing
    from aicp.verify.wgsuite.job import run_job
    from tests.kubeapi.controllers.kubelet import kubelet

    kube, _, played = job_world(kubeapi_factory, tmp_path, monkeypatch)
    # What a kubelet reports for an image the mirror does not hold.
    kubelet(kube).waiting = lambda pod, container: {"state": {"waiting": {
        "reason": "ImagePullBackOff", "message": "Back-off pulling image "
        f"\"{pod['spec']['containers'][0]['image']}\""}}} if container == "suite" else None
    client = connect(kube.write_kubeconfig(tmp_path / "kc.yaml"))
    # The pod never starts; 3 s leaves the emulated kubelet time to report why even on a
    # loaded machine (the wait ends only at this limit either way).
    short = Timing(timeout=20.0, poll=0.05, overrides={"wg_suite.start_timeout": 3.0})
    run = run_job(client, Settings("pull1", "", timing=short), [], "mirror.local/hub")
    assert run.returncode == 124 and not played  # the script never ran
    assert any("the Job's pod did not start within 3 s (ImagePullBackOff: Back-off "
               'pulling image "mirror.local/hub/library/golang:1.25.9-bookworm")' in n
               for n in run.notes), run.notes
    assert leftovers(kube) == []


def test_a_lost_cluster_names_the_cleanup_and_the_job_stops_itself(
        kubeapi_factory, tmp_path, monkeypatch):
    from aicp.verify.kube import connect, sweep
    from aicp.verify.probe import Settings
    from aicp.verify.wgsuite.job import TIMEOUTS, run_job
    from tests.kubeapi.controllers.kubelet import kubelet

    kube, _, _ = job_world(kubeapi_factory, tmp_path, monkeypatch)
    kubelet(kube).completes = lambda pod: False
    client = connect(kube.write_kubeconfig(tmp_path / "kc.yaml"))

    def network_drops():  # once the Job exists, the cluster stops answering
        kube.faults.drop()
        return None

    run = run_job(client, Settings("lost1", "", timing=FAST), [], None, network_drops)
    assert not run.passed
    assert any(n.startswith("not deleted yet: ") and n.endswith(
        "run: aicp verify cleanup --run-id lost1") for n in run.notes), run.notes
    # What the cluster keeps meanwhile stops on its own: the Job's deadline.
    (job,) = kube.list("jobs.batch", labels="aicp.dev/verify-run=lost1")
    assert job["spec"]["activeDeadlineSeconds"] == int(TIMEOUTS["suite_timeout"]) == 5400
    kube.faults.clear()
    sweep.cleanup(connect(kube.write_kubeconfig(tmp_path / "kc.yaml")), "lost1",
                  timeout=20.0)
    assert leftovers(kube) == []


def test_job_mode_options_are_checked_before_any_probe(tmp_path, capsys, kubeapi_factory):
    kube = kubeapi_factory("empty", minor="1.37")
    for extra, message in [
        ({"wg_suite_source": tmp_path}, "--wg-suite-source is not read by --wg-suite-mode "
                                        "job"),
        ({"wg_suite_mode": "pod"}, "--wg-suite-mode 'pod': use local"),
    ]:
        code, _ = run_job_verify(kube, tmp_path / "out", tmp_path, **extra) if \
            "wg_suite_mode" not in extra else _bad_mode(kube, tmp_path, extra)
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def _bad_mode(kube, tmp_path, extra):
    opts = session.Options(kubeconfig=kube.write_kubeconfig(tmp_path / "kc.yaml"),
                           output=["checklist"], output_dir=tmp_path / "out", wg_suite=True,
                           **extra)
    return session.run(opts, Console(file=open(tmp_path / "bad.log", "w"))), ""
