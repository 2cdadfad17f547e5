"""Run a Pulumi program in-process under Pulumi's mocks and record what it declares.

No Pulumi CLI, no credentials, no network: every resource registration is captured with
its type, name, parent, provider, dependencies and inputs (secret values redacted and
their paths recorded), together with component outputs and stack outputs. This is the
engine behind ``aicp plan`` and the component tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import fakes

# How the Pulumi SDK marks a secret value on the wire (sdk/python/lib/pulumi/runtime/rpc.py).
_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
REDACTED = "[secret]"


@dataclass
class Resource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]
    secret_paths: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)  # components' registered outputs
    # Resource options the engine acts on at update and destroy time.
    ignore_changes: list[str] = field(default_factory=list)
    retain_on_delete: bool = False
    # The aliases as the SDK sends them (alias specs, pulumi/proto/pulumi/alias.proto):
    # {"spec": {"parentUrn": ...}}, {"spec": {"name": ...}}, or {"urn": ...}. The Python SDK
    # (pulumi 3.272, pulumi/runtime/resource.py create_alias_spec) sends Alias(parent=r) as
    # parentUrn=<r's URN>, a parent left out as parentUrn "" (the current parent), and
    # Alias(parent=None) as noParent; the engine turns specs into old URNs.
    aliases: list[dict[str, Any]] = field(default_factory=list)

    def export(self) -> dict[str, Any]:
        return {"urn": self.urn, "type": self.type, "name": self.name, "custom": self.custom,
                "parent": self.parent, "provider": self.provider,
                "dependencies": self.dependencies, "inputs": self.inputs,
                "secretPaths": self.secret_paths}


@dataclass
class Plan:
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: list[str]
    invokes: list[tuple[str, dict[str, Any]]]

    def of_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(type_token) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_token)]
            raise LookupError(f"expected one {type_token} named {name!r}, found {names}")
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise LookupError(urn)

    def ancestors(self, resource: Resource) -> Iterator[Resource]:
        urns = {r.urn: r for r in self.resources}
        parent = urns.get(resource.parent)
        while parent is not None:
            yield parent
            parent = urns.get(parent.parent)

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def descendants(self, parent: Resource) -> list[Resource]:
        out, frontier = [], [parent.urn]
        while frontier:
            urn = frontier.pop()
            for r in self.resources:
                if r.parent == urn:
                    out.append(r)
                    frontier.append(r.urn)
        return out

    def former_urns(self, resource: Resource) -> list[str]:
        """The URNs under which ``pulumi up`` finds ``resource`` in a stack's state: its own
        URN first, then what its aliases and its parents' aliases make of it, as the engine
        computes them (pulumi/pulumi ``pkg/resource/deploy/step_generator.go``:
        ``generateAliases``, ``collapseAliasToUrn``, ``inheritedChildAlias``).

        Where the engine takes the one alias of a parent that matched the old state, this
        takes every alias of it: a state written by any earlier layout is found.
        """
        urns = {r.urn: r for r in self.resources}
        found = [resource.urn]

        def add(urn: str) -> None:
            if urn not in found:
                found.append(urn)

        parent = urns.get(resource.parent)
        parent_aliases = self.former_urns(parent)[1:] if parent is not None else []
        own: list[str] = []
        for alias in resource.aliases:
            if "urn" in alias:
                own.append(alias["urn"])
                continue
            spec = alias.get("spec", {})
            name, type_ = spec.get("name") or resource.name, spec.get("type") or resource.type
            if spec.get("noParent"):
                own.append(_urn(resource.urn, "", type_, name))
                continue
            old_parent = spec.get("parentUrn") or resource.parent
            # An aliased parent's old URN is this resource's old parent, too.
            candidates = [old_parent]
            if spec.get("parentUrn") and old_parent in urns:
                candidates = self.former_urns(urns[old_parent])
            for p in candidates:
                own.append(_urn(resource.urn, p, type_, name))
        for urn in own:
            add(urn)
        # "Now multiply out any aliases our parent had."
        if parent is not None:
            for parent_alias in parent_aliases:
                add(_inherited(resource.type, resource.name, parent.name, parent_alias))
                for urn in own:
                    type_, name = _type_and_name(urn)
                    add(_inherited(type_, name, parent.name, parent_alias))
        return found

    def depends_on(self, resource: Resource, other: Resource) -> bool:
        """True when ``resource`` waits for ``other``, directly or through what it waits for.

        The SDK records a dependency on a component as dependencies on the component's
        custom children, so waiting for any resource inside ``other`` counts. A parent's
        ``depends_on`` does not reach its children, so ancestors of ``resource`` do not.
        """
        urns = {r.urn: r for r in self.resources}
        contained = {other.urn, *(d.urn for d in self.descendants(other))}
        seen: set[str] = set()
        frontier = [resource]
        while frontier:
            r = frontier.pop()
            for dep in r.dependencies:
                if dep in contained:
                    return True
                if dep not in seen and dep in urns:
                    seen.add(dep)
                    frontier.append(urns[dep])
        return False


def _urn(like: str, parent: str, type_: str, name: str) -> str:
    """A URN as the engine makes it: the stack and project of ``like``, the whole type chain
    of ``parent`` (none for the root stack), then ``type_`` and ``name`` (pulumi/pulumi
    ``pkg/resource/deploy/deployment.go`` ``generateURN``, ``resource.NewURN``)."""
    stack_project = like.split("::")[:2]
    parent_type = parent.split("::")[2] if parent else ""
    if parent_type == "pulumi:pulumi:Stack":
        parent_type = ""
    qualified = f"{parent_type}${type_}" if parent_type else type_
    return "::".join([*stack_project, qualified, name])


def _type_and_name(urn: str) -> tuple[str, str]:
    _, _, qualified, name = urn.split("::", 3)
    return qualified.split("$")[-1], name


def _inherited(type_: str, name: str, parent_name: str, parent_alias: str) -> str:
    """The engine's ``inheritedChildAlias``: a child named after its parent follows the
    parent's old name."""
    if name.startswith(parent_name):
        name = parent_alias.split("::", 3)[3] + name[len(parent_name):]
    return _urn(parent_alias, parent_alias, type_, name)


def _unwrap(value: Any, path: str, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET_SIG:
            secrets.append(path or "<root>")
            return REDACTED
        # A protobuf Struct's keys come out in hash order, which differs between processes:
        # sorted, a plan is the same on every run.
        return {k: _unwrap(v, f"{path}.{k}" if path else k, secrets)
                for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Structs carry every number as a double
    return value


def _plain(value: Any) -> Any:
    """Make deserialised inputs JSON-able (resource references become their URN)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    urn = getattr(value, "urn", None)
    return f"<resource {type(value).__name__}>" if urn is None else f"<resource {value!r}>"


def run(program: Callable[[], None], config: Mapping[str, Any], *, project: str = "aicp",
        stack: str = "plan", preview: bool = False) -> Plan:
    """Run ``program`` under mocks with ``config`` (``ns:key`` → value) and return the plan."""
    import pulumi
    from google.protobuf import json_format
    from pulumi.runtime import mocks as pmocks
    from pulumi.runtime import rpc
    from pulumi.runtime.config import set_all_config

    resources: list[Resource] = []
    invokes: list[tuple[str, dict[str, Any]]] = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            state = dict(args.inputs)
            state.update(fakes.outputs_for(args.typ, args.name, args.inputs))
            return f"{args.name}-id", state

        def call(self, args: pulumi.runtime.MockCallArgs):
            invokes.append((args.token, _plain(args.args)))
            # (result, check failures): the mock monitor iterates the failures. A canned
            # answer that raises is the provider's error (AccessDenied, NotFound): the engine
            # hands it to the program as a failed invoke the program may catch, not as a
            # crash of the run (pulumi/runtime/invoke.py), and so does this.
            try:
                return fakes.invoke(args.token, args.args), []
            except fakes.UnknownInvoke:
                raise
            except Exception as exc:  # what a provider reports, as text
                return {}, [("", str(exc))]

    class Monitor(pmocks.MockMonitor):
        def make_urn(self, parent: str, type_: str, name: str) -> str:
            # The engine's URN: the parent's whole type chain (the mock keeps only its
            # last type), so a resource that moves to another parent changes URN here as it
            # does in a stack.
            return _urn(f"urn:pulumi:{stack}::{project}", parent, type_, name)

        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                secrets: list[str] = []
                raw = json_format.MessageToDict(request.object)
                inputs = _unwrap(raw, "", secrets)
                resources.append(Resource(
                    urn=response.urn, type=request.type, name=request.name,
                    custom=bool(request.custom), parent=request.parent,
                    # The SDK gathers dependencies in a set: sorted, a plan is the same
                    # on every run.
                    provider=request.provider, dependencies=sorted(request.dependencies),
                    inputs=inputs, secret_paths=secrets,
                    ignore_changes=list(request.ignoreChanges),
                    retain_on_delete=bool(request.retainOnDelete),
                    aliases=[json_format.MessageToDict(a) for a in request.aliases]))
            return response

        def RegisterResourceOutputs(self, request):
            outputs = _unwrap(json_format.MessageToDict(request.outputs), "", [])
            for r in resources:
                if r.urn == request.urn:
                    r.outputs = outputs
            return super().RegisterResourceOutputs(request)

    del rpc  # imported for its side effect of registering serializers
    _ensure_event_loop()
    set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
    mocks = Mocks()
    pmocks.set_mocks(mocks, project=project, stack=stack, preview=preview,
                     monitor=Monitor(mocks))

    stack_outputs: dict[str, Any] = {}
    secret_outputs: list[str] = []

    @pulumi.runtime.test
    def _program():
        program()
        root = pulumi.runtime.get_root_resource()
        exported = dict(getattr(root, "outputs", {}) or {})

        def collect(name: str, value: Any) -> pulumi.Output[None]:
            out = pulumi.Output.from_input(value)

            async def _record(v: Any) -> None:
                if await out.is_secret():
                    secret_outputs.append(name)
                    v = REDACTED
                stack_outputs[name] = _plain(v)

            return out.apply(lambda v: asyncio.ensure_future(_record(v)))

        return pulumi.Output.all(*(collect(k, v) for k, v in exported.items()))

    _program()
    return Plan(resources=tree_order(resources), outputs=dict(sorted(stack_outputs.items())),
                secret_outputs=sorted(secret_outputs), invokes=invokes)


def tree_order(resources: list[Resource]) -> list[Resource]:
    """``resources`` as a tree walked depth first, siblings by (type, name, URN).

    The SDK registers resources in whatever order its asyncio tasks finish, which differs
    from run to run; a plan committed for review must not churn. Every parent comes before
    its children; a resource whose parent was not recorded (the stack) is a root.
    """
    urns = {r.urn for r in resources}
    children: dict[str, list[Resource]] = {}
    for r in resources:
        children.setdefault(r.parent if r.parent in urns else "", []).append(r)
    out: list[Resource] = []

    def walk(parent: str) -> None:
        for r in sorted(children.get(parent, []), key=lambda r: (r.type, r.name, r.urn)):
            out.append(r)
            walk(r.urn)

    walk("")
    return out


def _ensure_event_loop() -> None:
    # After an asyncio-based test the main thread may have no (or a closed) loop; Pulumi's
    # mock runtime needs one.
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
        if loop.is_closed():
            raise RuntimeError
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
