"""ai_service_metrics: the monitoring system discovers and collects a workload's metrics.

The WG suite's check (kubernetes-sigs/ai-conformance test/ai_service_metrics_test.go,
TestAIServiceMetrics): a workload counting the requests it serves, scraped through a
ServiceMonitor, gets exactly ``metricsRequestCount`` (10) requests through the API
server's service proxy, and Prometheus must then return that count; a count above it
fails at once (counters only grow), one that stays below it fails after the wait.

The cases, in order:

1. a ``monitoring.coreos.com/v1`` Prometheus selects ServiceMonitors and answers the query
   API through a Service: those selecting its pods first, on its ``routePrefix``, the first
   of every such Prometheus that answers (``verify.discover``; evidence
   ``prometheusFoundBy``); else ERROR: the platform's discovery mechanism is unknown to the
   probe;
2. the counting workload and its ServiceMonitor run where that Prometheus looks, and the
   workload becomes Ready;
3. Prometheus collects the workload's series (count 0) before any request, so discovery
   and collection are judged apart from the count;
4. each of the ``REQUESTS`` requests through the API server's service proxy is answered
   ``ok`` (one attempt each; else ERROR: the count to expect is unknown);
5. Prometheus shows exactly that count.

The workload is busybox httpd (the pinned ``busybox`` image) with two CGI scripts from a
ConfigMap (mode 0755; busybox httpd runs ``/cgi-bin/*``, mirror/busybox
networking/httpd.c, FEATURE_HTTPD_CGI defaults to y, and the official image is built from
``make defconfig`` with ``/bin/sh`` and ``mv`` installed as applets, docker-library/busybox
Dockerfile-builder.template): ``/cgi-bin/infer`` adds one to a count kept in an emptyDir and
answers ``ok``; ``/cgi-bin/metrics`` serves, as ``text/plain; version=0.0.4`` (Prometheus
3 rejects scrapes without a valid Content-Type), ``aicp_verify_probe_up{run="<run id>"}
1`` and the counter ``aicp_verify_requests_total{run="<run id>"}``. Readiness reads a
static file, so only the probe's requests are counted. prometheus-operator is asked to
scrape it with a ``monitoring.coreos.com/v1`` ServiceMonitor labelled and placed the way
the Prometheus object's ``serviceMonitorSelector``/``serviceMonitorNamespaceSelector``
want (null namespace selector: the ServiceMonitor goes into Prometheus' namespace,
tracked and deleted).

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
from dataclasses import dataclass, field

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from .. import discover
from ..kube import Lost
from ..probe import Context, Fail, Probe, ProbeError, Settings, one_line
from . import _net, _pods

MON = "monitoring.coreos.com/v1"
METRIC = "aicp_verify_probe_up"
COUNTER = "aicp_verify_requests_total"
METRICS_PATH = "/cgi-bin/metrics"
INFER_PATH = "/cgi-bin/infer"
READY_PATH = "/healthz.txt"
COUNT_FILE = "/data/requests"   # in the emptyDir mounted at /data
PROMETHEUS_PORT = 9090
WEB_PORT = _net.WEB_PORT  # the port web_server's httpd serves on
SCRAPE_INTERVAL = "10s"
# The WG test sends metricsRequestCount = 10 (test/ai_service_metrics_test.go).
REQUESTS = 10
SERVICE_LABEL = "aicp.dev/verify-metrics"


@dataclass
class _Prometheus:
    """The Prometheus the probe judges, queried through the API server's service proxy."""

    namespace: str
    name: str
    service: str
    spec: dict
    problems: list[str] = field(default_factory=list)  # failed queries, one line each
    port: str = str(PROMETHEUS_PORT)
    prefix: str = ""  # spec.routePrefix

    @property
    def base(self) -> str:
        return (f"/api/v1/namespaces/{self.namespace}/services/{self.service}:"
                f"{self.port}/proxy{self.prefix}")

    def query(self, ctx: Context, expr: str) -> list[dict] | None:
        try:
            answer = ctx.kube.request("GET", f"{self.base}/api/v1/query",
                                      query={"query": expr})
        except ApiException as exc:
            self.problems.append(one_line(exc))
            return None
        return (answer.get("data") or {}).get("result") or None

    def unreachable(self, ctx: Context) -> str | None:
        """The ERROR reason when Prometheus cannot be queried at all (None: it answers)."""
        if _answered(ctx, self.base):
            return None
        return (f"cannot query Prometheus through the API server proxy ({self.base}): "
                f"{self.problems[-1]}")


@dataclass(frozen=True)
class _Workload:
    """Where the counting workload and its ServiceMonitor run."""

    namespace: str
    name: str
    monitor_namespace: str
    enforced_label: str  # Prometheus' enforcedNamespaceLabel, "" if unset


class AiServiceMetrics(Probe):
    id = "ai_service_metrics"
    category = "observability"
    needs = ()
    mutating = True
    title = "Workload metrics in Prometheus format are discovered and collected"
    timeouts = {
        # aicr waits AIServiceMetricsWaitTimeout 2 min for a series (NVIDIA/aicr@bc05c6b
        # pkg/defaults/timeouts.go); here a new ServiceMonitor must first be picked up too:
        # service discovery refresh + a few scrape intervals.
        "series_timeout": 180.0,
        # The WG test allows -service-metrics-collection-timeout (default 5 min) from the
        # first request to the right count, discovery included; here discovery is already
        # done, so the count needs a few scrape intervals (10 s) more.
        "count_timeout": 120.0,
        "pod_timeout": 300.0,
        "request_timeout": 30.0,  # one request, as any other API call here (Kube.request)
        "interval": 5.0,
    }

    @classmethod
    def budget(cls, settings: Settings) -> float:
        def wait(name: str) -> float:
            return cls.timeout(settings, name)
        return (wait("pod_timeout") + wait("series_timeout") + wait("count_timeout")
                + REQUESTS * wait("request_timeout") + 60.0)

    def cases(self, ctx: Context) -> str:
        prom = _a_prometheus_selects_service_monitors(ctx)
        workload = _a_counting_workload_and_its_service_monitor_run(ctx, prom)
        labels = _prometheus_collects_the_workload_series(ctx, prom, workload)
        pods = _requests_through_the_service_proxy_are_answered(ctx, workload)
        return _prometheus_counts_the_requests_sent(ctx, prom, workload, labels, pods)


def _a_prometheus_selects_service_monitors(ctx: Context) -> _Prometheus:
    with ctx.step("find Prometheus"):
        kinds = {r.get("kind") for r in ctx.kube.resources(MON)}
        if "ServiceMonitor" not in kinds:
            raise ProbeError(f"no ServiceMonitor API ({MON}) is served: the platform's "
                             "metrics discovery mechanism is unknown to this probe; "
                             "install prometheus-operator or verify by hand")
        usable = _usable_prometheuses(ctx)
        if not usable:
            raise ProbeError(f"Prometheus not found: no {MON} Prometheus selects "
                             "ServiceMonitors (none exists, or every serviceMonitorSelector "
                             "is null, which selects nothing)")
        # Whatever answers the query API (verify.discover): each Prometheus' Services that
        # select its pods first, on its routePrefix; the first that answers is judged.
        tried = []
        for prom in usable:
            for api in discover.prometheus_query_apis(ctx, prom):
                tried.append(api.how)
                if discover.answers(ctx, api):
                    ctx.observe("prometheusFoundBy", api.how + " -> answers /api/v1/query")
                    ctx.observe("prometheus", f"{api.namespace}/{api.name} via service "
                                              f"{api.service}")
                    return _Prometheus(api.namespace, api.name, api.service,
                                       prom.get("spec") or {}, port=api.port,
                                       prefix=api.prefix)
        ctx.observe("prometheusTried", tried)
        prom = usable[0]
        pns, pname = prom["metadata"]["namespace"], prom["metadata"]["name"]
        apis = discover.prometheus_query_apis(ctx, prom)
        if not apis:
            raise ProbeError(f"Prometheus {pns}/{pname} has no Service "
                             f"with port {PROMETHEUS_PORT} in {pns}")
        # None answered: judge the best candidate, whose query error is the ERROR reason.
        api = apis[0]
        ctx.observe("prometheus", f"{pns}/{pname} via service {api.service}")
        return _Prometheus(pns, pname, api.service, prom.get("spec") or {}, port=api.port,
                           prefix=api.prefix)


def _a_counting_workload_and_its_service_monitor_run(ctx: Context,
                                                     prom: _Prometheus) -> _Workload:
    with ctx.step("deploy a metrics workload and its ServiceMonitor"):
        ns = ctx.namespace()
        pns, spec = prom.namespace, prom.spec
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
        _counting_server(ctx, ns, name)
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
        timeout = ctx.timeout("pod_timeout")
        if _net.wait_available(ctx, ns, name, timeout, ctx.timeout("interval")) is None:
            raise ProbeError(f"the metrics workload did not become Ready within "
                             f"{timeout:g}s (image pull or scheduling problem)")
        return _Workload(ns, name, sm_ns, enforced)


def _prometheus_collects_the_workload_series(ctx: Context, prom: _Prometheus,
                                             workload: _Workload) -> dict[str, str]:
    """The series' labels, once Prometheus has it (before any request: count 0)."""
    timeout = ctx.timeout("series_timeout")
    with ctx.step("query Prometheus for the workload's series"):
        expr = f'{METRIC}{{run="{ctx.run_id}"}}'
        ctx.observe("query", expr)
        found = ctx.wait_for("the series in Prometheus", lambda: prom.query(ctx, expr),
                             timeout=timeout, interval=ctx.timeout("interval"))
    if not found:
        if len(prom.problems) >= 2:
            unreachable = prom.unreachable(ctx)
            if unreachable:
                raise ProbeError(unreachable)
        target = _target(ctx, prom.base, {workload.namespace, workload.monitor_namespace})
        ctx.check("the workload's series is queryable in Prometheus", False,
                  f"absent after {timeout:g}s; scrape target: {target}")
        raise Fail(f"Prometheus did not collect {expr} within {timeout:g}s "
                   f"while the workload was Ready (scrape target: {target})")
    labels = found[0].get("metric") or {}
    ctx.check("the workload's series is queryable in Prometheus", True,
              json.dumps(labels, sort_keys=True))
    if workload.enforced_label:
        ctx.observe("enforcedNamespaceLabel", {
            workload.enforced_label: labels.get(workload.enforced_label),
            "serviceMonitorNamespace": workload.monitor_namespace})
    return labels


def _requests_through_the_service_proxy_are_answered(ctx: Context,
                                                     workload: _Workload) -> dict[str, int]:
    """The workload's pods before the requests (uid -> restarts), to tell a reset later."""
    ns, name = workload.namespace, workload.name
    with ctx.step(f"send {REQUESTS} requests through the API server's service proxy"):
        pods_before = _workload_pods(ctx, ns, name)
        proxy = f"/api/v1/namespaces/{ns}/services/{name}:http/proxy{INFER_PATH}"
        for i in range(1, REQUESTS + 1):
            try:
                # One attempt each: a retried request may have been counted already.
                answer = ctx.kube.request("GET", proxy, text=True, once=True,
                                          timeout=ctx.timeout("request_timeout"))
            except (ApiException, Lost) as exc:
                raise ProbeError(f"request {i}/{REQUESTS} to {proxy} failed, so the count "
                                 f"Prometheus should show is unknown: {one_line(exc)}"
                                 ) from None
            if (answer or "").strip() != "ok":
                raise ProbeError(f"request {i}/{REQUESTS} to {proxy} answered "
                                 f"{(answer or '')[:80]!r}, not the workload's 'ok'")
        ctx.observe("requests", {"sent": REQUESTS, "via": proxy})
        return pods_before


def _prometheus_counts_the_requests_sent(ctx: Context, prom: _Prometheus, workload: _Workload,
                                         labels: dict[str, str],
                                         pods_before: dict[str, int]) -> str:
    timeout = ctx.timeout("count_timeout")
    with ctx.step("wait for Prometheus to show the request count"):
        count_expr = f'{COUNTER}{{run="{ctx.run_id}"}}'
        ctx.observe("countQuery", count_expr)
        seen: list[float | None] = []

        def counted():
            result = prom.query(ctx, count_expr)
            # max(), as the WG test does: a target discovered twice is not counted twice
            value = max((float(r["value"][1]) for r in result or []), default=None)
            seen.append(value)
            return value if value is not None and value >= REQUESTS else None
        value = ctx.wait_for(f"{count_expr} = {REQUESTS}", counted,
                             timeout=timeout, interval=ctx.timeout("interval"))
    observed = value if value is not None else next(
        (v for v in reversed(seen) if v is not None), None)
    where = f"{prom.namespace}/{prom.service}"
    if value == REQUESTS:
        ctx.check(f"Prometheus counts the {REQUESTS} requests sent", True,
                  f"{count_expr} = {value:g}")
        expr = f'{METRIC}{{run="{ctx.run_id}"}}'
        return (f"Prometheus {where} discovered the workload through a "
                f"ServiceMonitor ({expr}: job {labels.get('job', '?')}, pod "
                f"{labels.get('pod', '?')}) and counted the {REQUESTS} requests "
                f"sent to it ({count_expr} = {value:g})")
    if value is None and not any(v is not None for v in seen) and prom.problems:
        unreachable = prom.unreachable(ctx)
        if unreachable:
            raise ProbeError(unreachable)
    shown = "absent" if observed is None else f"{observed:g}"
    restarted = _restarted(pods_before, _workload_pods(ctx, workload.namespace, workload.name))
    if restarted and (value is None or value < REQUESTS):
        raise ProbeError(f"the metrics workload {restarted}, which resets its counter: the "
                         f"count Prometheus shows ({shown}) cannot be judged")
    if value is not None:  # above the count: more requests reached it than were sent
        detail = f"expected {REQUESTS}, observed {shown} (more than were sent)"
    else:
        detail = (f"expected {REQUESTS}, observed {shown} after {timeout:g}s "
                  f"(scrape interval {SCRAPE_INTERVAL})")
    ctx.check(f"Prometheus counts the {REQUESTS} requests sent", False, detail)
    raise Fail(f"Prometheus {where} collects the workload's series but not "
               f"its request count: {count_expr} {detail}")


def _counting_server(ctx: Context, ns: str, name: str) -> None:
    """One busybox httpd replica (the service proxy's requests all reach the same counter)
    with the CGI scripts, and its Service labelled for the ServiceMonitor."""
    run = ctx.run_id
    metrics = (
        "#!/bin/sh\n"
        f"n=$(cat {COUNT_FILE} 2>/dev/null || echo 0)\n"
        "printf 'Content-Type: text/plain; version=0.0.4; charset=utf-8\\r\\n\\r\\n'\n"
        f"echo '# HELP {METRIC} Set to 1 by the aicp verify ai_service_metrics probe.'\n"
        f"echo '# TYPE {METRIC} gauge'\n"
        f"echo '{METRIC}{{run=\"{run}\"}} 1'\n"
        f"echo '# HELP {COUNTER} Requests served by {INFER_PATH}.'\n"
        f"echo '# TYPE {COUNTER} counter'\n"
        f"echo \"{COUNTER}{{run=\\\"{run}\\\"}} $n\"\n")
    # The new count is written beside the file and renamed over it: a scrape never reads a
    # half-written number. Requests come one at a time (the probe waits for each answer).
    infer = (
        "#!/bin/sh\n"
        f"n=$(cat {COUNT_FILE} 2>/dev/null || echo 0)\n"
        f"echo $((n + 1)) > {COUNT_FILE}.new && mv {COUNT_FILE}.new {COUNT_FILE}\n"
        "printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n")
    _net.web_server(ctx, ns, name, {READY_PATH: "ok\n", METRICS_PATH: metrics,
                                    INFER_PATH: infer},
                    ready_path=READY_PATH, service_port=WEB_PORT,
                    service_labels={SERVICE_LABEL: run},
                    executable=frozenset({METRICS_PATH, INFER_PATH}),
                    scratch=COUNT_FILE.rsplit("/", 1)[0])


def _workload_pods(ctx: Context, ns: str, name: str) -> dict[str, int]:
    """uid -> restarts of the workload's pods (a new uid or restart: its counter reset)."""
    try:
        pods = ctx.kube.request("GET", f"/api/v1/namespaces/{ns}/pods",
                                query={"labelSelector": f"app={name}"}).get("items", [])
    except ApiException:
        return {}
    return {p["metadata"]["uid"]: sum(c.get("restartCount", 0) for c in
                                      (p.get("status") or {}).get("containerStatuses") or [])
            for p in pods if not p["metadata"].get("deletionTimestamp")}


def _restarted(before: dict[str, int], after: dict[str, int]) -> str:
    if before and set(before) - set(after):
        return "was replaced by a new pod" if after else "has no pod any more"
    if any(after.get(uid, n) > n for uid, n in before.items()):
        return "restarted"
    return ""


def _usable_prometheuses(ctx: Context) -> list[dict]:
    """Every Prometheus selecting ServiceMonitors, by namespace and name."""
    items = ctx.kube.request("GET", f"/apis/{MON}/prometheuses").get("items", [])
    ctx.observe("prometheuses", [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                                 for p in items])
    usable = [p for p in items if (p.get("spec") or {}).get("serviceMonitorSelector")
              is not None]
    return sorted(usable, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))


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
