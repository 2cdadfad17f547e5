"""disaggregated_inference: separate prefill and decode workloads run and are Ready.

Read-only: it looks for a disaggregated serving deployment already on the platform (aicp
does not install a model server). Role labels identify the phases:

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
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from ..probe import Context, Fail, Probe

ROLE_LABELS = ("llm-d.ai/role", "nvidia.com/dynamo-sub-component-type")
PHASES = ("prefill", "decode")


class DisaggregatedInference(Probe):
    id = "disaggregated_inference"
    category = "networking"
    mutating = False
    title = "Separate prefill and decode workloads are Ready"

    def cases(self, ctx: Context) -> str:
        apis = _serving_workloads(ctx)
        found = _role_labelled_pods(ctx)
        return _ready_prefill_and_decode_are_separate_workloads(ctx, found, apis)


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
