"""disaggregated_inference: separate prefill and decode workloads run and are Ready.

Without ``--long`` it only reads: it looks for a disaggregated serving deployment already on
the platform (aicp does not install a model server). Role labels identify the phases:

- llm-d: ``llm-d.ai/role`` = ``prefill`` | ``decode`` (the EPP's prefill/decode filters);
- NVIDIA Dynamo: ``nvidia.com/dynamo-sub-component-type`` = ``prefill`` | ``decode``, set by
  the Dynamo operator on the workers of a ``DynamoGraphDeployment`` (nvidia.com/v1alpha1).

Its cases, in order:

1. ``_serving_workloads``: LeaderWorkerSets (``leaderworkerset.x-k8s.io/v1``) and
   DynamoGraphDeployments are listed as evidence;
2. ``_role_labelled_pods``: the pods labelled prefill or decode, counted per namespace,
   label, phase and controller owner;
3. ``_ready_prefill_and_decode_are_separate_workloads``: PASS only when Ready prefill pods
   and Ready decode pods exist in the same namespace and belong to different workloads
   (distinct controller owners), i.e. the phases are separately scalable. Otherwise FAIL
   with a reason starting "not implemented" (the checklist writes "Not Implemented"; a
   SHOULD never changes the exit code).

With ``--long`` it exercises the platform's own prefill/decode scheduling instead of
looking for someone else's deployment (cases 3-5 replace case 3 above):

3. ``_the_installed_pool_routes_through_a_gateway``: the platform's InferencePool, the
   HTTPRoute that has it as backendRef and its Gateway's in-cluster address. A missing
   piece is ERROR (the stack cannot be exercised), not a verdict on the requirement.
4. ``_a_simulated_prefill_decode_pair_joins_the_pool``: a prefill and a decode Deployment
   of llm-d's CPU-only vLLM simulator, built as llm-d-router v0.10.0 builds its own
   (``deploy/components/vllm-prefill``, ``vllm-decode``, ``deploy/environments/dev/p-d``:
   Deployments, not LeaderWorkerSets; the decode pod's routing sidecar on the pool's port
   in front of the simulator on 8200). They go into the pool's namespace with the pool's
   selector labels, since an InferencePool selects pods of its own namespace
   (gateway-api-inference-extension v1 ``InferencePoolSpec.Selector``: "pods in the same
   namespace"); a pool of our own would need an endpoint picker of our own
   (``endpointPickerRef`` is a local reference), which is not the installed stack. Both
   carry the run's labels and are tracked, so the run deletes them, and
   ``aicp verify cleanup`` finds them by label (``kube/sweep.py``).
5. ``_a_completion_through_the_gateway_is_disaggregated``: a ``POST /v1/completions``
   from a curl pod through the Gateway (up to ``ATTEMPTS``, each with a new prompt, until
   one is answered by the pair: the picker may choose other servers of the pool), judged
   as llm-d-router v0.10.0's e2e tests judge a P/D request (``test/e2e/e2e_test.go``
   "Running a PD configuration"): the ``x-inference-pod`` response header names a decode
   pod, and the prefill pod's
   ``vllm:e2e_request_latency_seconds_count`` went up (``test/e2e/utils_test.go``
   ``getPodRequestCount``, read through the API server's pod proxy). Answered but not
   disaggregated is FAIL. The endpoint picker's ``llm_d_epp_pd_decision_total`` (also
   checked there, through a port-forward) is not read: the chart serves the EPP's metrics
   with ``--metrics-endpoint-auth`` on unless ``router.monitoring.prometheus.auth.enabled``
   is false (llm-d-router v0.10.0 config/charts/routerlib/values.yaml, templates/
   _deployment.yaml; pkg/epp/server/options.go default true), and the API server's proxy
   sends no bearer token; reading it from Prometheus would wait for a scrape.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from ..probe import Context, Fail, Probe, ProbeError, Settings, one_line
from . import _net, _pods, _prom

ROLE_LABELS = ("llm-d.ai/role", "nvidia.com/dynamo-sub-component-type")
PHASES = ("prefill", "decode")


class DisaggregatedInference(Probe):
    id = "disaggregated_inference"
    category = "networking"
    mutating = False
    title = "Separate prefill and decode workloads are Ready"
    # Only the --long path waits: the simulator pods (an image pull, no model to load;
    # upstream's startupProbe allows 10 min for a real model) and one curl pod.
    timeouts = {"ready_timeout": 300.0, "pod_timeout": 180.0, "interval": 2.0,
                "margin": 60.0}  # the requests between the waits, and cleanup

    @classmethod
    def budget(cls, settings: Settings) -> float | None:
        """With ``--long``: both Deployments' waits and every completion's curl pod."""
        if not settings.long or settings.read_only:
            return None
        return (2 * cls.timeout(settings, "ready_timeout")
                + ATTEMPTS * cls.timeout(settings, "pod_timeout")
                + cls.timeout(settings, "margin"))

    def cases(self, ctx: Context) -> str:
        apis = _serving_workloads(ctx)
        found = _role_labelled_pods(ctx)
        if not ctx.settings.long or ctx.settings.read_only:
            return _ready_prefill_and_decode_are_separate_workloads(ctx, found, apis)
        pool, url = _the_installed_pool_routes_through_a_gateway(ctx)
        # The run's namespace first: it carries the holder and heartbeat that tell
        # ``aicp verify cleanup`` this run is alive while its pods stand in the pool's.
        client_ns = ctx.namespace()
        pair = _a_simulated_prefill_decode_pair_joins_the_pool(ctx, pool)
        return _a_completion_through_the_gateway_is_disaggregated(ctx, pool, url, pair,
                                                                  client_ns)


# (namespace, label) → phase → {owner: [ready pods, pods]}
Found = dict[tuple[str, str], dict[str, dict[str, list[int]]]]


def _serving_workloads(ctx: Context) -> dict[str, list[str]]:
    """LeaderWorkerSets and DynamoGraphDeployments, by kind: evidence, never judged."""
    with ctx.step("serving APIs"):
        apis = {}
        for api, plural in (("leaderworkerset.x-k8s.io/v1", "leaderworkersets"),
                            ("nvidia.com/v1alpha1", "dynamographdeployments")):
            if any(r.get("name") == plural for r in ctx.kube.resources(api)):
                items = _items(ctx, f"/apis/{api}/{plural}")
                apis[f"{plural}.{api.split('/')[0]}"] = [
                    f"{i['metadata'].get('namespace')}/{i['metadata']['name']}"
                    for i in items]
        ctx.observe("serving workloads", apis)
    return apis


def _role_labelled_pods(ctx: Context) -> Found:
    with ctx.step("prefill and decode pods"):
        found: Found = {}
        for label in ROLE_LABELS:
            pods = _items(ctx, "/api/v1/pods",
                          {"labelSelector": f"{label} in ({','.join(PHASES)})"})
            for pod in pods:
                meta = pod["metadata"]
                phase = meta["labels"][label]
                owner = _owner(pod)
                count = found.setdefault((meta["namespace"], label), {}).setdefault(
                    phase, {}).setdefault(owner, [0, 0])
                count[0] += _ready(pod)
                count[1] += 1
        summary = {f"{ns} ({label})": {phase: {o: f"{r}/{n} Ready" for o, (r, n) in
                                               owners.items()}
                                       for phase, owners in phases.items()}
                   for (ns, label), phases in found.items()}
        ctx.observe("role-labelled pods", summary)
    return found


def _ready_prefill_and_decode_are_separate_workloads(ctx: Context, found: Found,
                                                     apis: dict[str, list[str]]) -> str:
    for (ns, label), phases in sorted(found.items()):
        ready = {p: {o for o, (r, _) in phases.get(p, {}).items() if r} for p in PHASES}
        if ready["prefill"] and ready["decode"] and not ready["prefill"] & ready["decode"]:
            observed = (f"{ns}: prefill {sorted(ready['prefill'])}, "
                        f"decode {sorted(ready['decode'])} ({label})")
            ctx.check("separate prefill and decode workloads are Ready", True, observed)
            return f"disaggregated serving runs: {observed}"
    if found:
        described = "; ".join(
            f"{ns}: " + ", ".join(f"{p} {sum(r for r, _ in owners.values())}/"
                                  f"{sum(n for _, n in owners.values())} Ready"
                                  for p, owners in sorted(phases.items()))
            for (ns, _), phases in sorted(found.items()))
        ctx.check("separate prefill and decode workloads are Ready", False, described)
        raise Fail("not implemented: role-labelled serving pods exist but not "
                   f"Ready prefill and decode pods of separate workloads ({described})")
    extra = (" (found " + ", ".join(f"{k}: {len(v)}" for k, v in apis.items()) + ")"
             if apis else "")
    raise Fail("not implemented: no pods labelled as prefill or decode "
               f"({' or '.join(ROLE_LABELS)}){extra}; deploy a disaggregated "
               "serving solution (llm-d, Dynamo) to demonstrate it")


def _items(ctx: Context, path: str, query: dict | None = None) -> list[dict]:
    try:
        return list(ctx.kube.items(path, query=query))
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise


def _owner(pod: dict) -> str:
    refs = pod["metadata"].get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    return f"{ref['kind']}/{ref['name']}" if ref else f"Pod/{pod['metadata']['name']}"


def _ready(pod: dict) -> int:
    return int(any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (pod.get("status") or {}).get("conditions") or []))


# --long: exercise the installed prefill/decode scheduling ----------------------------------
ROLE = ROLE_LABELS[0]
# llm-d-inference-sim v0.10.2: a model name HuggingFace does not know selects the in-process
# tokenizer (docs/tokenization.md "Simulated Mode"; --force-dummy-tokenizer forces it, so no
# render sidecar and no network are needed); --mode echo answers with the prompt
# (README "Modes of Operation"); POD_NAME / POD_NAMESPACE feed the x-inference-pod /
# x-inference-namespace response headers (pkg/common/parser.go PodNameEnv, PodNsEnv;
# pkg/communication/http.go addResponseHeaders).
SIM_MODEL = "aicp-verify-sim"
SIM_ARGS = ["--model", SIM_MODEL, "--mode", "echo", "--force-dummy-tokenizer"]
# llm-d-router v0.10.0 deploy/components/vllm-decode: the simulator listens on 8200 behind
# the routing sidecar (its --vllm-port default, pkg/sidecar/proxy/options.go).
DECODE_SIM_PORT = 8200
# The sidecar's connector for the simulator pair, as upstream's P/D e2e deploys it
# (deploy/environments/dev/p-d/patch-decode.yaml --kv-connector=${CONNECTOR_TYPE};
# test/e2e/setup_test.go createModelServersPDNixlV2; pkg/sidecar/constants "nixlv2").
KV_CONNECTOR = "nixlv2"
# test/e2e/e2e_test.go simplePrompt and extraPrompt: long enough for the sample config's
# prefix-based-pd-decider (nonCachedTokens: 16, deploy/config/pd-epp-config.yaml) to
# choose a remote prefill on a fresh pod.
PROMPT = ("Hello my name is Andrew, I have a doctorate in Rocket Science, and I like "
          "interplanetary space exploration. Why is the sky sometimes blue and sometimes "
          "red close to sunset?")
# test/e2e/utils_test.go parseRequestCountFromMetrics; the simulator's histogram
# (llm-d-inference-sim pkg/llm-d-inference-sim/metrics.go E2EReqLatencyMetricName).
REQUESTS_METRIC = "vllm:e2e_request_latency_seconds_count"
POD_HEADER = "x-inference-pod"
# The endpoint picker may send a request to other model servers of the pool (see
# _a_completion_through_the_gateway_is_disaggregated): a few tries, each judged alone.
ATTEMPTS = 5


def _the_installed_pool_routes_through_a_gateway(ctx: Context) -> tuple[dict, str]:
    with ctx.step("find the installed InferencePool and its Gateway"):
        if not ctx.kube.resources(_net.POOLS):
            raise ProbeError(f"--long: the InferencePool API ({_net.POOLS}) is not served: "
                             "install the Inference Extension and its endpoint picker")
        pools = _items(ctx, f"/apis/{_net.POOLS}/inferencepools")
        if not pools:
            raise ProbeError("--long: no InferencePool is deployed: the endpoint picker "
                             "that schedules prefill and decode is missing")
        pool = sorted(pools, key=lambda p: (p["metadata"]["namespace"],
                                            p["metadata"]["name"]))[0]
        pns, pname = pool["metadata"]["namespace"], pool["metadata"]["name"]
        route = _net.route_to(ctx, pns, pname)
        if route is None:
            raise ProbeError(f"--long: no HTTPRoute in {pns} has InferencePool {pname} as "
                             "backendRef: requests cannot reach its endpoint picker")
        ref, gw = _net.route_gateway(ctx, route, pns)
        port = next((lis["port"] for lis in gw["spec"].get("listeners") or []
                     if not ref.get("sectionName") or lis["name"] == ref["sectionName"]),
                    80)
        base = _net.gateway_address(ctx, gw, port)
        if not base:
            raise ProbeError(f"--long: Gateway {ref['name']} has neither a Service nor an "
                             "address")
        url = f"{base}{_net.path_prefix(route, pname).rstrip('/')}/v1/completions"
        ctx.observe("inferencePool", f"{pns}/{pname}")
        ctx.observe("url", url)
        return pool, url


def _a_simulated_prefill_decode_pair_joins_the_pool(ctx: Context,
                                                    pool: dict) -> dict[str, list[dict]]:
    """Ready pods by role, once both Deployments are available."""
    ns = pool["metadata"]["namespace"]
    port = pool["spec"]["targetPorts"][0]["number"]
    selected = dict(pool["spec"]["selector"].get("matchLabels") or {})
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]

    def sim(name: str, sim_port: int) -> dict:
        return {"name": name, "image": ctx.image("inference-sim"),
                "args": [*SIM_ARGS, "--port", str(sim_port)], "env": env,
                "ports": [{"name": "http", "containerPort": sim_port}],
                "readinessProbe": {"httpGet": {"path": "/health", "port": sim_port},
                                   "periodSeconds": 2},
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                              "limits": {"memory": "256Mi"}},
                "securityContext": _net.SECURITY}

    # The routing sidecar as a native sidecar (an init container that keeps running), as
    # upstream's decode Deployment runs it.
    sidecar = {"name": "routing-sidecar", "image": ctx.image("disagg-sidecar"),
               "restartPolicy": "Always",
               "args": [f"--port={port}", f"--kv-connector={KV_CONNECTOR}",
                        "--secure-proxy=false"],
               "ports": [{"name": "sidecar-http", "containerPort": port}],
               "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                             "limits": {"memory": "256Mi"}},
               "securityContext": _net.SECURITY}
    specs = {"prefill": {"containers": [sim("vllm", port)]},
             "decode": {"initContainers": [sidecar],
                        "containers": [sim("vllm", DECODE_SIM_PORT)]}}
    names = {}
    with ctx.step(f"deploy a simulated prefill/decode pair into {ns}"):
        for role, spec in specs.items():
            name = f"aicp-verify-{ctx.run_id}-{role}"[:63]
            match = {**ctx.labels, ROLE: role}
            ctx.track(ctx.kube.request(
                "POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body={
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "labels": {**ctx.labels}},
                    "spec": {"replicas": 1, "selector": {"matchLabels": match},
                             "template": {"metadata": {"labels": {**selected, **match}},
                                          "spec": spec}}}), namespace=ns)
            names[role] = name
    with ctx.step("wait for the pair to be Ready"):
        timeout, interval = ctx.timeout("ready_timeout"), ctx.timeout("interval")
        for role, name in names.items():
            if _net.wait_available(ctx, ns, name, timeout, interval) is None:
                raise ProbeError(f"the simulated {role} Deployment {ns}/{name} was not "
                                 f"available within {timeout:g}s")
        pods = {role: [p for p in _items(ctx, f"/api/v1/namespaces/{ns}/pods", {
            "labelSelector": ",".join(f"{k}={v}" for k, v in {**ctx.labels,
                                                              ROLE: role}.items())})
            if _ready(p)] for role in names}
        ctx.observe("simulated pods", {r: [p["metadata"]["name"] for p in ps]
                                       for r, ps in pods.items()})
        if not pods["prefill"] or not pods["decode"]:
            raise ProbeError("the simulated prefill/decode Deployments are available but "
                             "their Ready pods could not be listed")
        return pods


def _a_completion_through_the_gateway_is_disaggregated(ctx: Context, pool: dict, url: str,
                                                       pair: dict[str, list[dict]],
                                                       ns: str) -> str:
    pns, pname = pool["metadata"]["namespace"], pool["metadata"]["name"]
    prefill = pair["prefill"][0]
    decode = {p["metadata"]["name"] for p in pair["decode"]}
    ours = decode | {p["metadata"]["name"] for p in pair["prefill"]}
    tried: list[str] = []
    for attempt in range(1, ATTEMPTS + 1):
        before = _requests_served(ctx, prefill)
        code, headers, answer = _one_completion(ctx, ns, url, attempt)
        served_by = headers.get(POD_HEADER, "")
        tried.append(f"HTTP {code or 'none'} from {served_by or 'a pod that names no pod'}"
                     + (f" ({answer[:120]})" if code != "200" else ""))
        if code == "200" and served_by in ours:
            break
    else:
        # llm-d's decode-filter also admits pool members without a role label
        # (filter/bylabel/roles.go: NewByLabel(..., allowsNoLabel=true, ...)), so with other
        # model servers in the pool a request may never reach the probe's pair.
        others = _other_servers(ctx, pool, ours)
        crowd = (f"; the pool also selects {', '.join(others)}, which the endpoint picker "
                 "may choose" if others else "")
        raise ProbeError(f"{ATTEMPTS} completions through InferencePool {pns}/{pname} "
                         f"({url}) were answered {'; '.join(tried)}{crowd}: none reached "
                         "the simulated pair, so the split cannot be judged")
    ctx.observe("completions", tried)
    after = _requests_served(ctx, prefill)
    to_decode = served_by in decode
    prefilled = after > before
    ctx.check(f"the {POD_HEADER} response header names a decode pod", to_decode,
              f"{POD_HEADER}: {served_by or '(absent)'}; decode pods {sorted(decode)}")
    ctx.check(f"the prefill pod's {REQUESTS_METRIC} went up", prefilled,
              f"{prefill['metadata']['name']}: {before:g} -> {after:g}")
    if not (to_decode and prefilled):
        raise Fail("a completion through InferencePool "
                   f"{pns}/{pname} was not disaggregated: answered by "
                   f"{served_by or 'an unnamed pod'}, prefill pod requests {before:g} -> "
                   f"{after:g} (expected a decode pod, after a remote prefill)")
    return (f"a completion through InferencePool {pns}/{pname} was prefilled by "
            f"{prefill['metadata']['name']} ({before:g} -> {after:g} requests) and decoded "
            f"by {served_by}")


def _one_completion(ctx: Context, ns: str, url: str,
                    attempt: int) -> tuple[str, dict[str, str], str]:
    name = f"client-{attempt}"
    with ctx.step(f"send completion {attempt} through the Gateway"):
        # A new prompt each time: a prefix the picker saw is cached on the pod it chose,
        # and its prefix-cache scorer would send the same prompt there again.
        body = json.dumps({"model": SIM_MODEL, "prompt": f"Request {attempt}. {PROMPT}",
                           "max_tokens": 16})
        _net.curl_pod(ctx, ns, name, {"request": [
            "-sS", "-i", "--max-time", "60", "-X", "POST",
            "-H", "Content-Type: application/json", "-d", body,
            "-w", "\\n%{http_code}\\n", url]})
        timeout = ctx.timeout("pod_timeout")
        if _net.wait_pod_finished(ctx, ns, name, timeout, ctx.timeout("interval")) is None:
            raise ProbeError(f"the curl pod {name} did not finish within {timeout:g}s")
        text = _pods.logs(ctx, ns, name, "request")
        ctx.artifact(f"completion-{attempt}.txt", text)
    return _http_answer(text)


def _other_servers(ctx: Context, pool: dict, ours: set[str]) -> list[str]:
    """Ready pods the pool selects besides the probe's pair."""
    selector = ",".join(f"{k}={v}" for k, v in
                        (pool["spec"]["selector"].get("matchLabels") or {}).items())
    return sorted(p["metadata"]["name"] for p in _items(
        ctx, f"/api/v1/namespaces/{pool['metadata']['namespace']}/pods",
        {"labelSelector": selector}) if _ready(p) and p["metadata"]["name"] not in ours)


def _requests_served(ctx: Context, pod: dict) -> float:
    """The simulator's request count, read through the API server's pod proxy."""
    meta = pod["metadata"]
    port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
    path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}:{port}/proxy/metrics"
    try:
        text = ctx.kube.request("GET", path, text=True)
    except ApiException as exc:
        raise ProbeError(f"cannot read {meta['name']}'s metrics ({path}): "
                         f"{one_line(exc)}") from exc
    return sum(s.value for s in _prom.parse(text).series(REQUESTS_METRIC))


def _http_answer(text: str) -> tuple[str, dict[str, str], str]:
    """(status code, response headers, body) from ``curl -i -w '\\n%{http_code}\\n'``
    output; the last header block counts (a ``100 Continue`` comes first)."""
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    code = lines.pop().strip() if lines and lines[-1].strip().isdigit() else ""
    headers: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].startswith("HTTP/"):
        headers = {}
        i += 1
        while i < len(lines) and lines[i].strip():
            name, _, value = lines[i].partition(":")
            headers[name.strip().lower()] = value.strip()
            i += 1
        i += 1
    return code, headers, "\n".join(lines[i:]).strip()
