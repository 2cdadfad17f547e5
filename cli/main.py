"""The ``aicp`` command: ``aicp plan`` and ``aicp verify``.

Start-up stays fast (``aicp --help`` well under half a second): command modules import
Pulumi, its providers and the ``kubernetes`` client inside the commands, never at the top.
"""

from __future__ import annotations

import typer

from ..verify.cli import app as verify_app
from ..verify.version import VERSION
from .plan import plan

app = typer.Typer(
    name="aicp",
    help="Stand up AI-ready Kubernetes platforms and prove they are conformant.",
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    # Plain click help: rich's help renderer costs ~0.2 s of start-up (target 0.5 s).
    rich_markup_mode=None,
    # A kubeconfig or stack config can hold tokens: never print locals in a traceback.
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"aicp {VERSION}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print aicp's version and exit.")) -> None:
    """Stand up AI-ready Kubernetes platforms and prove they are conformant."""


app.command("plan")(plan)
app.add_typer(verify_app, name="verify")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
