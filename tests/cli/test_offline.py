"""The offline engine names resources and finds their old names as ``pulumi up`` does."""

from __future__ import annotations

import pulumi

from aicp.cli import offline

BOX = "test:index:Box"
THING = "test:index:Thing"
STACK = "urn:pulumi:plan::aicp::"


class Box(pulumi.ComponentResource):
    def __init__(self, name: str, token: str = BOX,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(token, name, None, opts)
        self.register_outputs({})


def _plan(program) -> offline.Plan:
    return offline.run(program, {})


def test_a_urn_carries_the_whole_chain_of_parent_types():
    def program() -> None:
        outer = Box("outer")
        inner = Box("inner", opts=pulumi.ResourceOptions(parent=outer))
        Box("leaf", THING, opts=pulumi.ResourceOptions(parent=inner))

    plan = _plan(program)
    assert plan.one(BOX, "outer").urn == f"{STACK}{BOX}::outer"
    assert plan.one(THING, "leaf").urn == f"{STACK}{BOX}${BOX}${THING}::leaf"


def test_an_alias_reaches_the_sdk_as_a_spec_and_the_old_parent_gives_the_old_urn():
    def program() -> None:
        cluster = Box("cluster")
        pool = Box("pool", opts=pulumi.ResourceOptions(parent=cluster))
        Box("nodes", THING, opts=pulumi.ResourceOptions(
            parent=pool, aliases=[pulumi.Alias(parent=cluster)]))

    plan = _plan(program)
    nodes = plan.one(THING, "nodes")
    assert nodes.aliases == [{"spec": {"parentUrn": plan.one(BOX, "cluster").urn}}]
    assert plan.former_urns(nodes) == [
        f"{STACK}{BOX}${BOX}${THING}::nodes", f"{STACK}{BOX}${THING}::nodes"]


def test_children_follow_their_parent_alias_and_its_old_name():
    # pulumi/pulumi pkg/resource/deploy/step_generator.go inheritedChildAlias: a child named
    # after its parent takes the parent's old name as its prefix.
    def program() -> None:
        app = Box("newapp", opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="app")]))
        Box("newapp-fn", THING, opts=pulumi.ResourceOptions(parent=app))
        Box("other", THING, opts=pulumi.ResourceOptions(parent=app))

    plan = _plan(program)
    assert plan.former_urns(plan.one(THING, "newapp-fn")) == [
        f"{STACK}{BOX}${THING}::newapp-fn", f"{STACK}{BOX}${THING}::app-fn"]
    # The parent's type chain did not change: a child not named after it keeps its URN.
    assert plan.former_urns(plan.one(THING, "other")) == [f"{STACK}{BOX}${THING}::other"]


def test_a_resource_that_was_at_the_top_was_a_child_of_no_one():
    def program() -> None:
        group = Box("group")
        Box("moved", THING, opts=pulumi.ResourceOptions(
            parent=group, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]))

    plan = _plan(program)
    assert plan.former_urns(plan.one(THING, "moved"))[1:] == [f"{STACK}{THING}::moved"]
