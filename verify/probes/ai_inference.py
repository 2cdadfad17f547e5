"""ai_inference: the Gateway API splits traffic by weight and routes by header.

Creates, in its own namespace, a Gateway of an Accepted GatewayClass, two echo backends
(busybox httpd answering its own name) and one HTTPRoute: requests carrying
``x-model: b`` go to backend b only, the rest split 80/20 between a and b. The requests
come from an in-cluster curl pod whose output is parsed (works with any implementation,
in-cluster or cloud load balancer): the gateway is called at its Service (label
``gateway.networking.k8s.io/gateway-name``) or, without one, at its status address.
The cases, in order:

1. the Gateway API is served and a GatewayClass for ingress is Accepted (classes whose
   controller is mesh-internal or east-west are left out: ``verify.discover``);
2. the backends, the Gateway and the HTTPRoute are created, and the backends become
   available;
3. the Gateway is Programmed;
4. the HTTPRoute (weighted backendRefs, a header match) is Accepted with resolved
   references;
5. requests through the Gateway are answered: ``REQUESTS`` plain, ``HEADER_REQUESTS``
   with the header;
6. the split lands within ``TOLERANCE`` percentage points of the weights, and header
   routing is exact.
"""

from __future__ import annotations

from collections import Counter

from .. import discover
from ..probe import Context, Fail, Probe, ProbeError
from . import _net, _pods

REQUESTS = 200
HEADER_REQUESTS = 40
WEIGHTS = {"backend-a": 80, "backend-b": 20}
TOLERANCE = 10.0          # percentage points: 200 requests at 80/20 have sd 2.8
MAX_ERRORS = 0.02         # share of requests allowed to get no backend's answer
HEADER = ("x-model", "b")
LISTENER_PORT = 80
WRITE_OUT = " %{http_code}\\n"


class AiInference(Probe):
    id = "ai_inference"
    category = "networking"
    needs = ()
    mutating = True
    title = "Gateway API weighted traffic splitting and header-based routing"
    timeouts = {
        "gateway_timeout": 300.0,  # a cloud load balancer can take minutes
        "pod_timeout": 300.0,
        "route_timeout": 120.0,
        "interval": 2.0,
    }

    def cases(self, ctx: Context) -> str:
        gateway_class = _a_gateway_class_is_accepted(ctx)
        ns = _backends_a_gateway_and_a_route_are_created(ctx, gateway_class)
        _the_backends_become_available(ctx, ns)
        gw = _the_gateway_is_programmed(ctx, ns, gateway_class)
        _the_route_with_weights_and_a_header_match_is_accepted(ctx, ns)
        split, header = _requests_through_the_gateway_are_answered(ctx, ns, gw)
        return _the_split_follows_the_weights_and_the_header_routes(ctx, split, header)


def _a_gateway_class_is_accepted(ctx: Context) -> str:
    with ctx.step("find an Accepted GatewayClass"):
        if not ctx.kube.resources(_net.GW):
            raise Fail(f"the Gateway API ({_net.GW}) is not served: install its "
                       "CRDs and an implementation")
        gateway_class = _choose_class(ctx)
        if gateway_class is None:
            raise ProbeError("no GatewayClass is Accepted: the Gateway API "
                             "implementation is missing or not running")
        return gateway_class


def _backends_a_gateway_and_a_route_are_created(ctx: Context, gateway_class: str) -> str:
    """The probe's namespace, holding both backends, the Gateway and the HTTPRoute."""
    with ctx.step("create backends, Gateway and HTTPRoute"):
        ns = ctx.namespace()
        for name in WEIGHTS:
            _net.web_server(ctx, ns, name, {"index.html": name})
        _pods.create(ctx, f"/apis/{_net.GW}/namespaces/{ns}/gateways", {
            "apiVersion": _net.GW, "kind": "Gateway",
            # Istio: no cloud load balancer for a probe (ignored by others).
            "metadata": {"name": "probe",
                         "annotations": {"networking.istio.io/service-type": "ClusterIP"}},
            "spec": {"gatewayClassName": gateway_class, "listeners": [{
                "name": "http", "protocol": "HTTP", "port": LISTENER_PORT,
                "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}, ns)
        _pods.create(ctx, f"/apis/{_net.GW}/namespaces/{ns}/httproutes", route(), ns)
        return ns


def _the_backends_become_available(ctx: Context, ns: str) -> None:
    with ctx.step("wait for the backends"):
        timeout = ctx.timeout("pod_timeout")
        for name in WEIGHTS:
            if _net.wait_available(ctx, ns, name, timeout, ctx.timeout("interval")) is None:
                raise ProbeError(f"backend {name} did not become available within "
                                 f"{timeout:g}s (image pull or scheduling problem)")


def _the_gateway_is_programmed(ctx: Context, ns: str, gateway_class: str) -> dict:
    with ctx.step("wait for the Gateway to be programmed"):
        path = f"/apis/{_net.GW}/namespaces/{ns}/gateways/probe"
        last: dict = {}

        def programmed():
            last["gw"] = ctx.kube.request("GET", path)
            return last["gw"] if _net.is_true(last["gw"], "Programmed") else None
        timeout = ctx.timeout("gateway_timeout")
        gw = ctx.wait_for("Gateway Programmed", programmed, timeout=timeout,
                          interval=ctx.timeout("interval"))
        if gw is None:
            conds = ((last.get("gw") or {}).get("status") or {}).get("conditions")
            raise ProbeError(f"Gateway of class {gateway_class} not Programmed within "
                             f"{timeout:g}s ({_net.conditions_text(conds)})")
        return gw


def _the_route_with_weights_and_a_header_match_is_accepted(ctx: Context, ns: str) -> None:
    with ctx.step("wait for the HTTPRoute to be accepted"):
        parent = _wait_route(ctx, ns)
        conds = (parent or {}).get("conditions") or []
        accepted = all(any(c["type"] == t and c["status"] == "True" for c in conds)
                       for t in ("Accepted", "ResolvedRefs"))
        if not ctx.check("the HTTPRoute (weighted backends, header match) is Accepted "
                         "with resolved references", accepted, _net.conditions_text(conds)):
            raise Fail("the Gateway did not accept an HTTPRoute with weighted "
                       f"backendRefs and a header match: {_net.conditions_text(conds)}")


def _requests_through_the_gateway_are_answered(ctx: Context, ns: str,
                                               gw: dict) -> tuple[Counter, Counter]:
    """Who answered each request: (the plain ones, the header-matched ones)."""
    with ctx.step("send requests through the Gateway"):
        base = _net.gateway_address(ctx, gw, LISTENER_PORT)
        if not base:
            raise ProbeError("the programmed Gateway has neither a Service nor an address")
        ctx.observe("gatewayUrl", base)
        _net.curl_pod(ctx, ns, "client", {
            "split": ["-sS", "--max-time", "5", "-w", WRITE_OUT,
                      f"{base}/?n=[1-{REQUESTS}]"],
            "header": ["-sS", "--max-time", "5", "-w", WRITE_OUT,
                       "-H", f"{HEADER[0]}: {HEADER[1]}", f"{base}/?n=[1-{HEADER_REQUESTS}]"],
        }, warm_up=f"{base}/")
        timeout = ctx.timeout("pod_timeout")
        if _net.wait_pod_finished(ctx, ns, "client", timeout, ctx.timeout("interval")) is None:
            raise ProbeError(f"the curl pod did not finish within {timeout:g}s")
        split = Counter(_label(a) for a in _net.answers(_pods.logs(ctx, ns, "client",
                                                                    "split")))
        header = Counter(_label(a) for a in _net.answers(_pods.logs(ctx, ns, "client",
                                                                     "header")))
        return split, header


def _the_split_follows_the_weights_and_the_header_routes(ctx: Context, split: Counter,
                                                         header: Counter) -> str:
    ctx.observe("splitCounts", dict(split))
    ctx.observe("headerCounts", dict(header))
    answered = sum(split[name] for name in WEIGHTS)
    total = sum(split.values())
    lost = REQUESTS - answered
    ctx.check(f"{REQUESTS} requests through the Gateway were answered by a backend",
              lost <= REQUESTS * MAX_ERRORS,
              f"{answered} answered, {lost} not (seen: {dict(split)}, {total} responses)")
    shares = {name: 100.0 * split[name] / answered if answered else 0.0 for name in WEIGHTS}
    ok_split = answered > 0 and all(abs(shares[n] - w) <= TOLERANCE for n, w in WEIGHTS.items())
    ctx.check(f"weighted split {'/'.join(map(str, WEIGHTS.values()))} within "
              f"±{TOLERANCE:g} points", ok_split,
              ", ".join(f"{n} {split[n]} ({shares[n]:.1f}%)" for n in WEIGHTS))
    others = {k: v for k, v in header.items() if k != "backend-b"}
    ctx.check(f"every request with {HEADER[0]}: {HEADER[1]} reached backend-b only",
              header["backend-b"] == HEADER_REQUESTS and not others,
              f"backend-b {header['backend-b']} of {HEADER_REQUESTS}" +
              (f", elsewhere: {others}" if others else ""))
    failed = [c for c in ctx.evidence.checks if not c.passed]
    if failed:
        raise Fail("; ".join(f"expected {c.name}, observed {c.observed}" for c in failed))
    return (f"split {split['backend-a']}/{split['backend-b']} of {answered} requests "
            f"for weights 80/20; {HEADER_REQUESTS}/{HEADER_REQUESTS} header-matched "
            "requests reached backend-b")


def route() -> dict:
    return {"apiVersion": _net.GW, "kind": "HTTPRoute", "metadata": {"name": "split"},
            "spec": {"parentRefs": [{"name": "probe"}], "rules": [
                {"matches": [{"headers": [{"type": "Exact", "name": HEADER[0],
                                           "value": HEADER[1]}]}],
                 "backendRefs": [{"name": "backend-b", "port": 80}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [{"name": name, "port": 80, "weight": weight}
                                 for name, weight in WEIGHTS.items()]}]}}


def _label(answer: tuple[str, str]) -> str:
    body, code = answer
    return body if code == "200" and body in WEIGHTS else f"HTTP {code} {body[:40]}".strip()


def _choose_class(ctx: Context) -> str | None:
    """An Accepted GatewayClass for ingress, preferring one an existing programmed Gateway
    uses; classes whose controller is for mesh-internal or east-west traffic are left out
    and named (``discover.gateway_class_purpose``)."""
    classes = ctx.kube.request("GET", f"/apis/{_net.GW}/gatewayclasses").get("items", [])
    not_ingress = {c["metadata"]["name"]: why for c in classes
                   if (why := discover.gateway_class_purpose(c))}
    if not_ingress:
        ctx.observe("gatewayClassesNotIngress", not_ingress)
    accepted = sorted(c["metadata"]["name"] for c in classes if _net.is_true(c, "Accepted")
                      and c["metadata"]["name"] not in not_ingress)
    ctx.observe("gatewayClasses", {c["metadata"]["name"]: _net.conditions_text(
        (c.get("status") or {}).get("conditions")) for c in classes})
    if not accepted:
        return None
    used = [g["spec"].get("gatewayClassName") for g in ctx.kube.request(
        "GET", f"/apis/{_net.GW}/gateways").get("items", []) if _net.is_true(g, "Programmed")]
    chosen = next((c for c in used if c in accepted), accepted[0])
    ctx.observe("gatewayClass", chosen)
    return chosen


def _wait_route(ctx: Context, ns: str) -> dict | None:
    """The route's status for our Gateway once Accepted and ResolvedRefs, else the last."""
    path = f"/apis/{_net.GW}/namespaces/{ns}/httproutes/split"
    last: dict = {}

    def parent():
        parents = (ctx.kube.request("GET", path).get("status") or {}).get("parents") or []
        mine = [p for p in parents if p.get("parentRef", {}).get("name") == "probe"]
        if mine:
            last["parent"] = mine[0]
        return next((p for p in mine if all(any(
            c["type"] == t and c["status"] == "True" for c in p.get("conditions") or [])
            for t in ("Accepted", "ResolvedRefs"))), None)
    return ctx.wait_for("HTTPRoute Accepted", parent, timeout=ctx.timeout("route_timeout"),
                        interval=ctx.timeout("interval")) or last.get("parent")
