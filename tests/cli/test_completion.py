"""Shell completion (#27, "Also"): the shell is named, never guessed, and options complete to
what they take: stack names, requirement ids, report formats, checklist versions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aicp.cli.main import app
from aicp.verify.checklist import LEVELS
from aicp.verify.reports import FORMATS

REPO = Path(__file__).resolve().parents[2]


def complete(words: str, cwd: Path | None = None, monkeypatch=None) -> list[str]:
    if cwd is not None and monkeypatch is not None:
        monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, [], prog_name="aicp", env={
        "_AICP_COMPLETE": "complete_bash", "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1)})
    assert result.exit_code == 0, result.output
    return result.stdout.split()


@pytest.mark.parametrize("shell, written", [
    ("zsh", ".zfunc/_aicp"), ("bash", ".bash_completions/aicp.sh"),
    ("fish", ".config/fish/completions/aicp.fish")])
def test_install_completion_installs_for_the_shell_named(tmp_path: Path, shell: str,
                                                         written: str):
    # From a bash parent, `--install-completion zsh` once installed bash completion.
    result = CliRunner().invoke(app, ["--install-completion", shell], prog_name="aicp",
                                env={"HOME": str(tmp_path), "SHELL": "/bin/bash"})
    assert result.exit_code == 0, result.output
    assert f"{shell} completion installed in" in result.stdout
    assert (tmp_path / written).is_file()


def test_install_completion_without_a_shell_is_refused(tmp_path: Path):
    result = CliRunner().invoke(app, ["--install-completion"], prog_name="aicp",
                                env={"HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "requires an argument" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_shell_is_refused_naming_the_choices(tmp_path: Path):
    result = CliRunner().invoke(app, ["--show-completion", "tcsh"], prog_name="aicp")
    assert result.exit_code == 2
    assert "bash" in result.output and "zsh" in result.output


def test_stack_names_complete_from_the_project(tmp_path: Path, monkeypatch):
    for name in ("Pulumi.yaml", "Pulumi.aws.yaml", "Pulumi.gcp.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "Pulumi.lab.yaml").mkdir()  # not a stack file
    assert complete("aicp plan --stack ", tmp_path, monkeypatch) == ["aws", "gcp"]
    assert complete("aicp verify --stack g", tmp_path, monkeypatch) == ["gcp"]


def test_requirement_ids_formats_and_versions_complete():
    assert complete("aicp verify --only gang") == ["gang_scheduling"]
    assert complete("aicp verify --checklist 1.34 --skip d") == ["dra_support"]
    every = {rid for ids in LEVELS.values() for rid in ids}
    assert set(complete("aicp verify --skip ")) == every
    assert complete("aicp verify --output ") == list(FORMATS)
    assert complete("aicp verify --checklist ") == list(LEVELS)
