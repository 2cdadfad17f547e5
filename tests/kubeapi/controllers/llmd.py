"""llm-d's prefill/decode serving, for the emulator: the vLLM simulator, the decode pod's
routing sidecar and the endpoint picker's prefill/decode decision.

``respond(kube, pod, port, method, path, headers, body)`` answers for a pod that runs
llm-d-inference-sim (v0.10.2) or llm-d-router's routing sidecar (v0.10.0) on ``port``; None
when neither listens there (the caller falls back to ``httpd``):

- the simulator (an image ``…/llm-d-inference-sim``, ``--port``): ``GET /health`` and
  ``GET /v1/models`` (docs/api.md);
  ``POST /v1/completions`` answers an OpenAI completion (``--mode echo``: the prompt back,
  README "Modes of Operation") with the ``x-inference-pod``/``-port``/``-namespace`` headers
  when ``POD_NAME``/``POD_NAMESPACE`` are set (pkg/communication/http.go
  ``addResponseHeaders``; pkg/common/parser.go ``PodNameEnv``, ``PodNsEnv``) and counts the
  request; ``GET /metrics`` exposes the count as ``vllm:e2e_request_latency_seconds_count``
  by ``model_name`` (pkg/llm-d-inference-sim/metrics.go ``E2EReqLatencyMetricName``);
- the routing sidecar (an init container with ``restartPolicy: Always`` whose image is
  llm-d-router's disagg sidecar, ``--port``): with an ``x-prefiller-host-port: ip:port``
  request header it first sends the request to that prefill pod, then to the simulator of
  its own pod on the model-server port (``--model-server-port``/``--vllm-port``, default
  8200, pkg/sidecar/proxy/options.go); without the header, only to its own simulator
  (llm-d-inference-sim manifests/disaggregation/README.md, pkg/common/routing/common.go
  ``PrefillEndpointHeader``).

``schedule(kube, rng, pool, endpoints, body)`` plays the endpoint picker of an
InferencePool: it reads the plugin config file the EPP Deployment ``<epp>`` starts with from
the ConfigMap ``<epp>`` of the pool's namespace (llm-d-router v0.10.0
config/charts/routerlib/templates/_config.yaml names both ``<release>-epp``, the EPP
Service's name too). With a prefill/decode profile handler
(``disagg-profile-handler``, or the deprecated ``pd-profile-handler``, both run by
test/e2e/e2e_test.go) and a prompt of at least the decider's ``nonCachedTokens`` (no prefix
is cached on a fresh pod; pkg/epp/framework/plugins/scheduling/profilehandler/disagg/
README.md; tokens counted here as whitespace-separated words, the ``estimate`` backend's
own formula is not played) it picks a decode endpoint (filter/bylabel/roles.go: role
decode, prefill-decode, both, encode-prefill-decode, or no role label) and a prefill one
(role prefill, encode-prefill, prefill-decode, both, encode-prefill-decode), stamps the
prefill pod's ``ip:port`` into ``x-prefiller-host-port`` and counts
``llm_d_epp_pd_decision_total{decision_type="prefill-decode"}`` (disagg/metrics.go);
otherwise a decode-only or profile-less pick among all endpoints (the caller's random pick).
"""

from __future__ import annotations

import json
import random

ROLE = "llm-d.ai/role"
DECODE_ROLES = {"decode", "prefill-decode", "both", "encode-prefill-decode"}
PREFILL_ROLES = {"prefill", "encode-prefill", "prefill-decode", "both", "encode-prefill-decode"}
PD_HANDLERS = {"disagg-profile-handler", "pd-profile-handler"}
PREFILLER = "x-prefiller-host-port"
SIM_IMAGE = "llm-d-inference-sim"
SIDECAR_IMAGE = "llm-d-router-disagg-sidecar"
REQUESTS = "vllm:e2e_request_latency_seconds_count"


def _state(kube) -> dict:
    if not hasattr(kube, "_llmd"):
        kube._llmd = {"served": {}, "decisions": {}}
    return kube._llmd


def _flags(argv: list[str]) -> dict[str, str]:
    out, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            out[name] = value
        i += 1
    return out


def _argv(container: dict) -> list[str]:
    return list(container.get("command") or []) + list(container.get("args") or [])


def _running(pod: dict) -> bool:
    return ((pod.get("status") or {}).get("phase") == "Running"
            and not pod["metadata"].get("deletionTimestamp"))


def respond(kube, pod: dict, port: int, method: str, path: str, headers: dict[str, str],
            body: str) -> tuple[int, dict[str, str], str] | None:
    if not _running(pod):
        return None
    spec = pod["spec"]
    for c in spec.get("initContainers") or []:
        if (c.get("restartPolicy") == "Always" and SIDECAR_IMAGE in c.get("image", "")
                and _flags(_argv(c)).get("port") == str(port)):
            flags = _flags(_argv(c))
            local = int(flags.get("model-server-port") or flags.get("vllm-port") or 8200)
            prefiller = {k.lower(): v for k, v in headers.items()}.get(PREFILLER)
            if method == "POST" and prefiller:
                target = _pod_at(kube, prefiller)
                if target is None:
                    return 502, {}, f"prefill endpoint {prefiller} unreachable"
                answer = respond(kube, target[0], target[1], method, path, headers, body)
                if answer is None or answer[0] != 200:
                    return 502, {}, "prefill failed"
            return respond(kube, pod, local, method, path, headers, body) or (
                0, {}, "connection refused")
    for c in spec.get("containers") or []:
        if SIM_IMAGE in c.get("image", "") and _flags(_argv(c)).get("port") == str(port):
            return _simulate(kube, pod, c, port, method, path, body)
    return None


def _simulate(kube, pod: dict, container: dict, port: int, method: str, path: str,
              body: str) -> tuple[int, dict[str, str], str]:
    model = _flags(_argv(container)).get("model", "")
    key = pod["metadata"]["uid"]
    served = _state(kube)["served"]
    route = path.split("?")[0]
    if method == "GET" and route == "/health":
        return 200, {}, ""
    if method == "GET" and route == "/v1/models":
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "object": "list", "data": [{"id": model, "object": "model", "owned_by": "vllm"}]})
    if method == "GET" and route == "/metrics":
        text = (f"# HELP {REQUESTS[:-6]} Histogram of end to end request latency in seconds\n"
                f"# TYPE {REQUESTS[:-6]} histogram\n"
                f'{REQUESTS}{{model_name="{model}"}} {served.get(key, 0)}\n')
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, text
    if method == "POST" and route == "/v1/completions":
        try:
            request = json.loads(body or "{}")
        except ValueError:
            return 400, {}, '{"error": "invalid JSON"}'
        if request.get("model") != model:
            return 404, {}, json.dumps({"error": {"message": f"model {request.get('model')} "
                                                  "does not exist", "code": 404}})
        served[key] = served.get(key, 0) + 1
        out = {"Content-Type": "application/json"}
        env = {e["name"]: e for e in container.get("env") or []}
        if "POD_NAME" in env:
            out["x-inference-pod"] = _env(pod, env["POD_NAME"])
            out["x-inference-port"] = str(port)
        if "POD_NAMESPACE" in env:
            out["x-inference-namespace"] = _env(pod, env["POD_NAMESPACE"])
        text = str(request.get("prompt", ""))
        return 200, out, json.dumps({
            "id": f"cmpl-{served[key]}", "object": "text_completion", "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})
    return 404, {}, ""


def _env(pod: dict, var: dict) -> str:
    ref = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
    if ref == "metadata.name":
        return pod["metadata"]["name"]
    if ref == "metadata.namespace":
        return pod["metadata"]["namespace"]
    return str(var.get("value", ""))


def _pod_at(kube, host_port: str) -> tuple[dict, int] | None:
    ip, _, port = host_port.rpartition(":")
    for pod in kube.list("pods"):
        if (pod.get("status") or {}).get("podIP") == ip and _running(pod):
            return pod, int(port)
    return None


def _plugins(kube, pool: dict) -> list[dict]:
    """The plugins of the config file the EPP Deployment starts with (``--config-file
    /config/<file>``, the chart's default ``default-plugins.yaml``: routerlib values.yaml
    ``pluginsConfigFile``, templates/_deployment.yaml), read from its ConfigMap."""
    import yaml

    ns = pool["metadata"]["namespace"]
    epp = (pool["spec"].get("endpointPickerRef") or {}).get("name", "")
    deployment = kube.find("deployments.apps", epp, ns) if epp else None
    argv = [a for c in ((((deployment or {}).get("spec") or {}).get("template") or {})
                        .get("spec") or {}).get("containers") or [] for a in _argv(c)]
    path = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config-file"),
                "/config/default-plugins.yaml")
    cm = kube.find("configmaps", epp, ns) if epp else None
    text = ((cm or {}).get("data") or {}).get(path.rsplit("/", 1)[-1], "")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    return (doc.get("plugins") or []) if isinstance(doc, dict) else []


def schedule(kube, rng: random.Random, pool: dict, endpoints: list[tuple[dict, int]],
             body: str) -> tuple[list[tuple[dict, int]], dict[str, str]]:
    """The endpoints the EPP leaves for this request and the headers it adds."""
    plugins = _plugins(kube, pool)
    if not any(p.get("type") in PD_HANDLERS for p in plugins):
        return endpoints, {}
    threshold = next((int((p.get("parameters") or {}).get("nonCachedTokens") or 0)
                      for p in plugins if p.get("type") == "prefix-based-pd-decider"), 0)
    try:
        request = json.loads(body or "{}")
    except ValueError:
        request = {}
    model = str(request.get("model", "")) if isinstance(request, dict) else ""
    prompt = str(request.get("prompt", "")) if isinstance(request, dict) else ""

    def role(pod):
        return (pod["metadata"].get("labels") or {}).get(ROLE)

    decode = [e for e in endpoints if role(e[0]) is None or role(e[0]) in DECODE_ROLES]
    prefill = [e for e in endpoints if role(e[0]) in PREFILL_ROLES]
    disaggregate = bool(threshold and prefill and len(prompt.split()) >= threshold)
    decision = "prefill-decode" if disaggregate else "decode-only"
    counts = _state(kube)["decisions"]
    counts[(decision, model)] = counts.get((decision, model), 0) + 1
    if not disaggregate:
        return decode, {}
    pod, port = rng.choice(prefill)
    return decode, {PREFILLER: f"{pod['status'].get('podIP', '')}:{port}"}


def pd_decisions(kube) -> str:
    """The EPP's ``llm_d_epp_pd_decision_total`` series as it would expose them."""
    return "".join(f'llm_d_epp_pd_decision_total{{decision_type="{d}",model_name="{m}"}} {n}\n'
                   for (d, m), n in sorted(_state(kube)["decisions"].items()))
