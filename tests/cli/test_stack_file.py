"""``Pulumi.<stack>.yaml`` is read as Pulumi reads it (go-yaml v3, YAML 1.2): anchors, aliases
and merge keys are valid, ``yes`` is a string, and a stack "file" that is not a file is named
as such (#27, "Also")."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aicp.cli.main import app
from aicp.cli.plan import stack_config
from aicp.verify.verdicts import UsageError

REPO = Path(__file__).resolve().parents[2]


def write(tmp: Path, text: str, name: str = "x") -> Path:
    shutil.copy(REPO / "Pulumi.yaml", tmp / "Pulumi.yaml")
    (tmp / f"Pulumi.{name}.yaml").write_text(text)
    return tmp


def test_anchors_aliases_and_merge_keys_are_read_as_pulumi_reads_them(tmp_path: Path):
    write(tmp_path, """\
config:
  aicp:target: aws
  aicp:gpuPools:
    - &pool
      name: l4
      accelerator: l4
      minNodes: 1
      maxNodes: 2
    - <<: *pool
      name: l4b
      maxNodes: 4
""")
    pools = stack_config(tmp_path, "x")["aicp:gpuPools"]
    assert pools == [
        {"name": "l4", "accelerator": "l4", "minNodes": 1, "maxNodes": 2},
        {"name": "l4b", "accelerator": "l4", "minNodes": 1, "maxNodes": 4}]


def test_a_key_given_twice_beside_a_merge_is_still_refused(tmp_path: Path):
    write(tmp_path, """\
config:
  aicp:base: &b {a: 1}
  aicp:other:
    <<: *b
    c: 1
    c: 2
""")
    with pytest.raises(UsageError, match=r"Pulumi.x.yaml line 6: key 'c' is given twice"):
        stack_config(tmp_path, "x")


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes", "ON"])
def test_yaml_1_1_booleans_stay_strings_as_in_yaml_1_2(tmp_path: Path, word: str):
    write(tmp_path, f"config:\n  aicp:clusterName: {word}\n  aicp:flag: true\n")
    config = stack_config(tmp_path, "x")
    assert config["aicp:clusterName"] == word
    assert config["aicp:flag"] is True


def test_an_unquoted_yes_for_a_switch_is_refused_as_pulumi_would_pass_it(tmp_path: Path):
    text = (REPO / "Pulumi.aws.yaml").read_text()
    assert "    privateAccess: true\n" in text
    text = text.replace("    privateAccess: true\n", "    privateAccess: yes\n", 1)
    write(tmp_path, text, "aws")
    result = CliRunner().invoke(app, ["plan", "--stack", "aws", "--project-dir",
                                      str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == ("error: aicp:endpoint.privateAccess: 'yes' is not true or "
                             "false\n")


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_stack_file_that_is_not_a_file_is_named_as_such(tmp_path: Path, kind: str):
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    path = tmp_path / "Pulumi.x.yaml"
    if kind == "directory":
        path.mkdir()
        expected = "error: Pulumi.x.yaml: is a directory; the stack's config must be a file\n"
    else:
        if not hasattr(os, "mkfifo"):
            pytest.skip("this platform has no FIFOs")
        os.mkfifo(path)
        expected = ("error: Pulumi.x.yaml: is not a regular file (a FIFO, socket or device); "
                    "the stack's config must be a file\n")
    result = CliRunner().invoke(app, ["plan", "--stack", "x", "--project-dir",
                                      str(tmp_path)])
    assert (result.exit_code, result.stderr) == (2, expected)
