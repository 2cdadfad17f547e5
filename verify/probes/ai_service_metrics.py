"""ai_service_metrics: the monitoring system discovers a workload's Prometheus metrics.

Deploys a tiny workload serving ``aicp_verify_probe_up{run="<run id>"} 1`` in Prometheus
text format (busybox httpd, a ConfigMap file served as ``text/plain``: Prometheus 3
rejects scrapes without a valid Content-Type), asks prometheus-operator to scrape it
with a ``monitoring.coreos.com/v1`` ServiceMonitor labelled and placed the way the
Prometheus object's ``serviceMonitorSelector``/``serviceMonitorNamespaceSelector`` want
(null namespace selector: the ServiceMonitor goes into Prometheus' namespace, tracked
and deleted), then queries Prometheus' HTTP API through the API server's service proxy
until the series appears.

Two Prometheus settings change where things must go (prometheus-operator
pkg/apis/monitoring/v1/prometheus_types.go, CommonPrometheusFields):
``ignoreNamespaceSelectors`` makes every ServiceMonitor discover endpoints only in its own
namespace (its ``namespaceSelector`` is ignored), so with a null
``serviceMonitorNamespaceSelector`` the workload itself runs in Prometheus' namespace
(tracked and deleted); ``enforcedNamespaceLabel`` sets that label on every scraped series to
the ServiceMonitor's namespace, so a series is looked up by its ``run`` label only and its
target by either namespace.
"""

from __future__ import annotations

import json

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from ..probe import Context, Probe, one_line
from ..result import Result
from . import _net, _pods

MON = "monitoring.coreos.com/v1"
METRIC = "aicp_verify_probe_up"
METRICS_PATH = "/metrics.txt"
PROMETHEUS_PORT = 9090
SCRAPE_INTERVAL = "10s"
# aicr waits AIServiceMetricsWaitTimeout 2 min for a series (NVIDIA/aicr@bc05c6b
# pkg/defaults/timeouts.go); here a new ServiceMonitor must first be picked up too.
SERIES_TIMEOUT = 180.0    # service discovery refresh + a few scrape intervals
POD_TIMEOUT = 300.0
INTERVAL = 5.0
SERVICE_LABEL = "aicp.dev/verify-metrics"


class AiServiceMetrics(Probe):
    id = "ai_service_metrics"
    category = "observability"
    levels = {"1.34": "MUST", "1.35": "MUST", "1.36": "MUST", "1.37": "MUST"}
    needs = ()
    mutating = True
    title = "Workload metrics in Prometheus format are discovered and collected"

    def run(self, ctx: Context) -> Result:
        with ctx.step("find Prometheus"):
            kinds = {r.get("kind") for r in ctx.kube.resources(MON)}
            if "ServiceMonitor" not in kinds:
                return ctx.error(f"no ServiceMonitor API ({MON}) is served: the platform's "
                                 "metrics discovery mechanism is unknown to this probe; "
                                 "install prometheus-operator or verify by hand")
            prom = _choose_prometheus(ctx)
            if prom is None:
                return ctx.error(f"Prometheus not found: no {MON} Prometheus selects "
                                 "ServiceMonitors (none exists, or every serviceMonitorSelector "
                                 "is null, which selects nothing)")
            pns = prom["metadata"]["namespace"]
            service = _prometheus_service(ctx, pns)
            if service is None:
                return ctx.error(f"Prometheus {pns}/{prom['metadata']['name']} has no Service "
                                 f"with port {PROMETHEUS_PORT} in {pns}")
            ctx.observe("prometheus", f"{pns}/{prom['metadata']['name']} via service {service}")
        with ctx.step("deploy a metrics workload and its ServiceMonitor"):
            ns = ctx.namespace()
            spec = prom.get("spec") or {}
            ns_selector = spec.get("serviceMonitorNamespaceSelector")
            ignore = bool(spec.get("ignoreNamespaceSelectors"))
            enforced = str(spec.get("enforcedNamespaceLabel") or "")
            sm_ns = pns if ns_selector is None else ns
            if ns_selector:
                _label_namespace(ctx, ns, ns_selector)
            if ignore and sm_ns != ns:
                ns = sm_ns  # the ServiceMonitor only finds endpoints beside itself
            name = "metrics" if ns != pns else f"aicp-verify-metrics-{ctx.run_id}"[:63]
            ctx.observe("settings", {"ignoreNamespaceSelectors": ignore,
                                     "enforcedNamespaceLabel": enforced, "workload": ns})
            text = (f"# HELP {METRIC} Set to 1 by the aicp verify ai_service_metrics probe.\n"
                    f"# TYPE {METRIC} gauge\n{METRIC}{{run=\"{ctx.run_id}\"}} 1\n")
            _net.web_server(ctx, ns, name, {METRICS_PATH.lstrip("/"): text},
                            ready_path=METRICS_PATH, service_port=8080,
                            service_labels={SERVICE_LABEL: ctx.run_id})
            monitor = {
                "apiVersion": MON, "kind": "ServiceMonitor",
                "metadata": {"name": f"aicp-verify-{ctx.run_id}"[:63],
                             "labels": _labels_for(spec.get("serviceMonitorSelector") or {})},
                "spec": {"selector": {"matchLabels": {SERVICE_LABEL: ctx.run_id}},
                         "namespaceSelector": {"matchNames": [ns]},
                         "endpoints": [{"port": "http", "path": METRICS_PATH,
                                        "interval": SCRAPE_INTERVAL}]}}
            _pods.create(ctx, f"/apis/{MON}/namespaces/{sm_ns}/servicemonitors", monitor, sm_ns)
            ctx.observe("serviceMonitor", f"{sm_ns}/{monitor['metadata']['name']}")
            if _net.wait_available(ctx, ns, name, POD_TIMEOUT, INTERVAL) is None:
                return ctx.error(f"the metrics workload did not become Ready within "
                                 f"{POD_TIMEOUT:g}s (image pull or scheduling problem)")
        with ctx.step("query Prometheus for the workload's series"):
            base = f"/api/v1/namespaces/{pns}/services/{service}:{PROMETHEUS_PORT}/proxy"
            expr = f'{METRIC}{{run="{ctx.run_id}"}}'
            ctx.observe("query", expr)
            problems: list[str] = []

            def series():
                try:
                    answer = ctx.kube.request("GET", f"{base}/api/v1/query",
                                              query={"query": expr})
                except ApiException as exc:
                    problems.append(one_line(exc))
                    return None
                return (answer.get("data") or {}).get("result") or None
            found = ctx.wait_for("the series in Prometheus", series, timeout=SERIES_TIMEOUT,
                                 interval=INTERVAL)
        if found:
            labels = found[0].get("metric") or {}
            ctx.check("the workload's series is queryable in Prometheus", True,
                      json.dumps(labels, sort_keys=True))
            if enforced:
                ctx.observe("enforcedNamespaceLabel", {enforced: labels.get(enforced),
                                                       "serviceMonitorNamespace": sm_ns})
            return ctx.passed(f"Prometheus {pns}/{service} discovered the workload through a "
                              f"ServiceMonitor and returned {expr} (job "
                              f"{labels.get('job', '?')}, pod {labels.get('pod', '?')})")
        if problems and len(problems) >= 2 and not _answered(ctx, base):
            return ctx.error(f"cannot query Prometheus through the API server proxy ({base}): "
                             f"{problems[-1]}")
        target = _target(ctx, base, {ns, sm_ns})
        ctx.check("the workload's series is queryable in Prometheus", False,
                  f"absent after {SERIES_TIMEOUT:g}s; scrape target: {target}")
        return ctx.failed(f"Prometheus did not collect {expr} within {SERIES_TIMEOUT:g}s while "
                          f"the workload was Ready (scrape target: {target})")


def _choose_prometheus(ctx: Context) -> dict | None:
    items = ctx.kube.request("GET", f"/apis/{MON}/prometheuses").get("items", [])
    ctx.observe("prometheuses", [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                                 for p in items])
    usable = [p for p in items if (p.get("spec") or {}).get("serviceMonitorSelector")
              is not None]
    return sorted(usable, key=lambda p: (p["metadata"]["namespace"],
                                         p["metadata"]["name"]))[0] if usable else None


def _prometheus_service(ctx: Context, ns: str) -> str | None:
    services = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/services").get("items", [])
    names = [s["metadata"]["name"] for s in services
             if any(p.get("port") == PROMETHEUS_PORT for p in s["spec"].get("ports") or [])]
    ranked = sorted(names, key=lambda n: (not n.endswith("-prometheus"),
                                          n != "prometheus-operated", n))
    return ranked[0] if ranked else None


def _labels_for(selector: dict) -> dict[str, str]:
    """Labels satisfying a LabelSelector (In: its first value; Exists: any value)."""
    labels = dict(selector.get("matchLabels") or {})
    for expr in selector.get("matchExpressions") or []:
        if expr.get("operator") == "In" and expr.get("values"):
            labels[expr["key"]] = expr["values"][0]
        elif expr.get("operator") == "Exists":
            labels[expr["key"]] = "aicp-verify"
    return labels


def _label_namespace(ctx: Context, ns: str, selector: dict) -> None:
    labels = _labels_for(selector)
    if labels:
        ctx.kube.api(kubernetes.client.CoreV1Api).patch_namespace(
            ns, {"metadata": {"labels": labels}})


def _answered(ctx: Context, base: str) -> bool:
    try:
        ctx.kube.request("GET", f"{base}/api/v1/query", query={"query": "vector(1)"})
        return True
    except ApiException:
        return False


def _target(ctx: Context, base: str, namespaces: set[str]) -> str:
    try:
        data = ctx.kube.request("GET", f"{base}/api/v1/targets", query={"state": "active"})
    except ApiException as exc:
        return f"unknown ({one_line(exc)})"
    mine = [t for t in (data.get("data") or {}).get("activeTargets") or []
            if (t.get("labels") or {}).get("namespace") in namespaces]
    ctx.artifact("targets.json", json.dumps(mine, indent=2))
    if not mine:
        return "not discovered"
    return "; ".join(f"{t.get('scrapeUrl')} {t.get('health')} {t.get('lastError') or ''}".strip()
                     for t in mine)
