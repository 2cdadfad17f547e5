"""advanced_inference_ingress: a Gateway API Inference Extension implementation routes
requests to model servers through an InferencePool.

Inspects the platform's InferencePools (``inference.networking.k8s.io/v1``) rather than
creating one: ``endpointPickerRef`` is a local reference and an endpoint picker serves
one pool, so a pool in the probe's namespace would need a second endpoint picker. The
cases, in order:

1. the InferencePool API is served and a pool is deployed;
2. the pool is Accepted with resolved references by a parent Gateway, and its endpoint
   picker Service exists;
3. an HTTPRoute of a Gateway has the pool as backendRef, and a model-server pod behind
   the pool is Ready;
4. a curl pod's ``GET /v1/models`` through that Gateway is answered with an OpenAI-style
   model list from a model server.

SHOULD requirement: no InferencePool API, or no pool deployed, is "not implemented" and
reported FAIL (checklist status "Not Implemented"; a SHOULD never fails the run), not
SKIP (N/A would claim the requirement does not apply). No Ready model-server pod behind
the pool is ERROR: routing cannot be exercised until a model is deployed.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from ..probe import Context, Fail, Probe, ProbeError
from . import _net, _pods

REQUEST_PATH = "v1/models"


class AdvancedInferenceIngress(Probe):
    id = "advanced_inference_ingress"
    category = "networking"
    needs = ()
    mutating = True
    title = "Gateway API Inference Extension routes to model servers"
    timeouts = {
        "pod_timeout": 300.0,  # the curl pod: an image pull and one request
        "interval": 2.0,
    }

    def cases(self, ctx: Context) -> str:
        pool = _the_inference_pool_api_serves_a_pool(ctx)
        _the_pool_is_accepted_and_its_endpoint_picker_exists(ctx, pool)
        url = _a_route_and_ready_model_servers_stand_behind_the_pool(ctx, pool)
        _a_request_through_the_gateway_reaches_a_model_server(ctx, pool, url)
        pns, pname = pool["metadata"]["namespace"], pool["metadata"]["name"]
        return (f"InferencePool {pns}/{pname} is accepted by its Gateway and "
                f"GET {url} was answered by a model server")


def _the_inference_pool_api_serves_a_pool(ctx: Context) -> dict:
    with ctx.step("find InferencePools"):
        if not ctx.kube.resources(_net.POOLS):
            raise Fail(f"not implemented: the InferencePool API ({_net.POOLS}) is not "
                       "served (Gateway API Inference Extension not installed)")
        pools = ctx.kube.request("GET", f"/apis/{_net.POOLS}/inferencepools").get("items", [])
        ctx.observe("inferencePools", [f"{p['metadata']['namespace']}/"
                                       f"{p['metadata']['name']}" for p in pools])
        if not pools:
            raise Fail("not implemented: the InferencePool API is served but no "
                       "InferencePool with an endpoint picker is deployed")
        pool = sorted(pools, key=lambda p: (not _accepted(p), p["metadata"]["namespace"],
                                            p["metadata"]["name"]))[0]
        ctx.artifact("inferencepool.json", json.dumps(pool, indent=2))
        return pool


def _the_pool_is_accepted_and_its_endpoint_picker_exists(ctx: Context, pool: dict) -> None:
    pns, pname = pool["metadata"]["namespace"], pool["metadata"]["name"]
    with ctx.step("check the pool's status and endpoint picker"):
        parents = (pool.get("status") or {}).get("parents") or []
        ctx.check(f"InferencePool {pns}/{pname} is Accepted with ResolvedRefs by a Gateway",
                  _accepted(pool), "; ".join(
                      f"{(p.get('parentRef') or {}).get('name')}: "
                      f"{_net.conditions_text(p.get('conditions'))}" for p in parents)
                  or "no status.parents")
        epp = (pool["spec"].get("endpointPickerRef") or {}).get("name", "")
        found = bool(epp) and _exists(ctx, f"/api/v1/namespaces/{pns}/services/{epp}")
        ctx.check(f"endpoint picker Service {pns}/{epp} exists", found,
                  "found" if found else "missing")
        failed = [c for c in ctx.evidence.checks if not c.passed]
        if failed:
            raise Fail("; ".join(f"expected {c.name}, observed {c.observed}" for c in failed))


def _a_route_and_ready_model_servers_stand_behind_the_pool(ctx: Context, pool: dict) -> str:
    """The URL of the pool's models list through the Gateway of its HTTPRoute."""
    pns, pname = pool["metadata"]["namespace"], pool["metadata"]["name"]
    with ctx.step("find the route and model servers"):
        route = _net.route_to(ctx, pns, pname)
        if route is None:
            raise ProbeError(f"no HTTPRoute in {pns} has InferencePool {pname} as "
                             "backendRef: routing cannot be exercised")
        ref, gw = _net.route_gateway(ctx, route, pns)
        selector = ",".join(f"{k}={v}" for k, v in
                            (pool["spec"]["selector"].get("matchLabels") or {}).items())
        servers = [p["metadata"]["name"] for p in ctx.kube.request(
            "GET", f"/api/v1/namespaces/{pns}/pods", query={"labelSelector": selector}
        ).get("items", []) if _net.is_true(p, "Ready")]
        ctx.observe("modelServers", servers)
        if not servers:
            raise ProbeError(f"no Ready model-server pod ({selector}) behind InferencePool "
                             f"{pns}/{pname}: deploy a model to exercise routing")
        port = next((lis["port"] for lis in gw["spec"].get("listeners") or []
                     if not ref.get("sectionName") or lis["name"] == ref["sectionName"]),
                    80)
        base = _net.gateway_address(ctx, gw, port)
        if not base:
            raise ProbeError(f"Gateway {ref['name']} has neither a Service nor an address")
        prefix = _net.path_prefix(route, pname)
        url = f"{base}{prefix.rstrip('/')}/{REQUEST_PATH}"
        ctx.observe("url", url)
        return url


def _a_request_through_the_gateway_reaches_a_model_server(ctx: Context, pool: dict,
                                                         url: str) -> None:
    pns, pname = pool["metadata"]["namespace"], pool["metadata"]["name"]
    with ctx.step("send a request through the Gateway"):
        ns = ctx.namespace()
        _net.curl_pod(ctx, ns, "client", {"request": [
            "-sS", "--max-time", "30", "-w", " %{http_code}\\n", url]})
        timeout = ctx.timeout("pod_timeout")
        if _net.wait_pod_finished(ctx, ns, "client", timeout, ctx.timeout("interval")) is None:
            raise ProbeError(f"the curl pod did not finish within {timeout:g}s")
        answers = _net.answers(_pods.logs(ctx, ns, "client", "request"))
    body, code = answers[-1] if answers else ("", "none")
    ok = code == "200" and _model_list(body)
    ctx.check("a request through the Gateway to the InferencePool is answered by a model "
              "server (OpenAI model list)", ok, f"HTTP {code}: {body[:200]}")
    if not ok:
        raise Fail(f"GET {url} through InferencePool {pns}/{pname} answered "
                   f"HTTP {code}, not a model server's model list")


def _accepted(pool: dict) -> bool:
    return any(all(any(c.get("type") == t and c.get("status") == "True"
                       for c in p.get("conditions") or []) for t in ("Accepted", "ResolvedRefs"))
               for p in (pool.get("status") or {}).get("parents") or [])


def _exists(ctx: Context, path: str) -> bool:
    try:
        ctx.kube.request("GET", path)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def _model_list(body: str) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("data"), list)
