"""What every target keeps, whatever its cloud: one shape, every refusal of its component
named by a config key, the platform's pool rules, and no other target's SDK loaded."""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi.errors import InputPropertyError

from aicp.stacks.config import parse
from aicp.stacks.targets import TARGETS, target
from aicp.stacks.targets.base import POOL_KEYS, message, pattern
from tests.stacks.test_config import _set

from .cases import accepted, refused, stack

REPO = Path(__file__).resolve().parents[3]
NAMES = sorted(TARGETS)
SDKS = {"aws": "pulumi_aws", "gcp": "pulumi_gcp", "azure": "pulumi_azure_native"}
# Calls that refuse an argument, and where their property paths are.
REFUSALS = {"InputPropertyError", "PropertyError", "ipv4_network", "node_range", "region_code"}


def test_an_unknown_target_is_one_line_naming_the_targets():
    assert refused("aws", _set("target", "openstack")) == \
        "aicp:target: 'openstack' is not one of aws, gcp, azure, onprem"


@pytest.mark.parametrize("name", NAMES)
def test_every_target_has_its_example_stack_and_component(name):
    assert (REPO / f"Pulumi.{name}.yaml").is_file()
    assert (REPO / "components" / f"{name}.py").is_file()
    assert (REPO / "stacks" / "targets" / f"{name}.py").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_every_target_has_the_one_shape(name):
    module = target(name)
    for function in ("check", "cluster", "preflight", "load_balancers", "secrets",
                     "check_secrets"):
        assert callable(getattr(module, function)), function
    assert set(module.KEYS) >= set(POOL_KEYS)
    assert all(key.startswith("aicp:") for key in module.KEYS.values())


def _paths(source: Path, only: str | None = None) -> list[tuple[int, str]]:
    """Every property path a refusal in ``source`` names (with ``see``), as a regex: an
    index or map key is ``[*]``, a name chosen at run time any name."""
    tree = ast.parse(source.read_text())
    scope = tree if only is None else next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == only)

    def regex(node: ast.expr) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return re.escape(pattern(node.value)[0])
        assert isinstance(node, ast.JoinedStr), f"{source.name}:{node.lineno}: not a literal"
        out = ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                out += re.escape(str(part.value))
            elif out.endswith(re.escape("[")):
                out += re.escape("*")
            else:
                out += r"[a-z_]+"
        return out

    def values(node: ast.expr) -> list[ast.expr]:
        # A path held in a variable: every value the module assigns to it.
        if isinstance(node, ast.IfExp):
            return values(node.body) + values(node.orelse)
        if not isinstance(node, ast.Name):
            return [node]
        assigned = [a.value for a in ast.walk(tree) if isinstance(a, ast.Assign)
                    and any(getattr(t, "id", None) == node.id for t in a.targets)]
        assert assigned, f"{source.name}:{node.lineno}: {node.id} is never assigned"
        return [v for a in assigned for v in values(a)]

    found = []
    for node in ast.walk(scope):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in REFUSALS):
            continue
        found += [(node.lineno, regex(v)) for v in values(node.args[0])]
        see = node.args[2] if len(node.args) > 2 else next(
            (k.value for k in node.keywords if k.arg == "see"), None)
        if isinstance(see, ast.Tuple):
            found += [(node.lineno, regex(e)) for e in see.elts]
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_path_its_component_refuses_is_named_by_a_config_key(name):
    keys = target(name).KEYS
    paths = _paths(REPO / "components" / f"{name}.py") + _paths(
        REPO / "components" / "contract.py", only="validate_pools")
    assert len(paths) > 5
    unnamed = [f"{line}: {path}" for line, path in paths
               if not any(re.fullmatch(path, key) for key in keys)]
    assert unnamed == []


@pytest.mark.parametrize("name", NAMES)
def test_every_example_stack_passes_its_target(name):
    assert accepted(name).target == name


@pytest.mark.parametrize("name", NAMES)
def test_every_target_refuses_min_above_max_naming_the_key(name):
    assert refused(name, _set("gpuPools[0].minNodes", 9), _set("gpuPools[0].maxNodes", 8)) \
        == "aicp:gpuPools[0].minNodes: 9 is more than maxNodes 8"
    # Its component refuses the same, and the target names the pool's key.
    module = target(name)
    args = module.args(parse(stack(name)))
    pools = list(args.gpu_pools)
    with pytest.raises(InputPropertyError) as err:
        pools[0] = dataclasses.replace(pools[0], min_nodes=9, max_nodes=8)
        module.validate(dataclasses.replace(args, gpu_pools=tuple(pools)))
    assert message(err.value, module.KEYS) == \
        "aicp:gpuPools[0].minNodes: 9 is more than max_nodes 8"


@pytest.mark.parametrize("name", NAMES)
def test_every_target_refuses_an_accelerator_outside_its_catalog(name):
    assert refused(name, _set("gpuPools[0].accelerator", "h200x")).startswith(
        "aicp:gpuPools[0].accelerator: 'h200x' is not one of ")


@pytest.mark.parametrize("name", NAMES)
def test_every_target_refuses_a_pool_name_given_twice(name):
    def twice(cfg: dict) -> None:
        cfg["gpuPools"] = [cfg["gpuPools"][0], dict(cfg["gpuPools"][0])]
        if name == "onprem":
            cfg["onprem"]["gpuNodes"] = {cfg["gpuPools"][0]["name"]: ["gpu-0"]}

    first = stack(name)["gpuPools"][0]["name"]
    assert refused(name, twice) == f"aicp:gpuPools[1].name: {first!r} is used by another pool"


@pytest.mark.parametrize("name", NAMES)
def test_a_plan_loads_no_other_targets_sdk(name):
    code = ("import sys; from pathlib import Path; from aicp.cli.plan import build_plan, "
            f"stack_config; build_plan(stack_config(Path({str(REPO)!r}), {name!r}), {name!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{sorted(SDKS.values())!r}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = {m.split(".")[0] for m in ast.literal_eval(run.stdout.strip().splitlines()[-1])}
    assert loaded == ({SDKS[name]} if name in SDKS else set())
