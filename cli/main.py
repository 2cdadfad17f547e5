"""The ``aicp`` command: ``aicp plan`` and ``aicp verify``.

Start-up stays fast (``aicp --help`` well under half a second): command modules import
Pulumi, its providers and the ``kubernetes`` client inside the commands, never at the top.
"""

from __future__ import annotations

import typer

from ..verify.cli import app as verify_app
from ..verify.version import VERSION
from .completion import SHELLS, Shell, install, show
from .plan import plan

app = typer.Typer(
    name="aicp",
    help="Stand up AI-ready Kubernetes platforms and prove they are conformant.",
    no_args_is_help=True,
    # --install-completion SHELL / --show-completion SHELL (cli/completion.py): the shell
    # is named, not guessed from the parent process.
    add_completion=False,
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
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print aicp's version and exit."),
    install_completion: Shell = typer.Option(
        None, "--install-completion", metavar="SHELL", case_sensitive=False,
        callback=install, is_eager=True, expose_value=False,
        help=f"Install completion for SHELL ({', '.join(SHELLS)})."),
    show_completion: Shell = typer.Option(
        None, "--show-completion", metavar="SHELL", case_sensitive=False,
        callback=show, is_eager=True, expose_value=False,
        help="Print the completion script for SHELL, to install it by hand."),
) -> None:
    """Stand up AI-ready Kubernetes platforms and prove they are conformant."""


app.command("plan")(plan)
app.add_typer(verify_app, name="verify")


def main() -> None:
    from ..verify.signals import process_exits_after_run

    process_exits_after_run()
    _streams_that_always_take_text()
    try:
        app()
    finally:
        _close_event_loop()


def _streams_that_always_take_text() -> None:
    """Standard streams that never end a run in a traceback.

    Started with a stream closed (``aicp plan >&-``), Python sets it to None and the first
    print fails; in an ASCII-only locale (LANG=C) a character like "—" cannot be encoded.
    A closed stream becomes /dev/null, and characters the encoding lacks are replaced
    (verify's own writer, ``reports.terminal.Tolerant``, spells them out first).
    """
    import os
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
        elif hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def _close_event_loop() -> None:
    """Close the asyncio loop ``aicp plan`` ran Pulumi's mock runtime on, before the
    interpreter exits.

    Left open, the loop is closed by its ``__del__`` during interpreter shutdown, when its
    selector's file descriptor may already be gone: Python then prints "Exception ignored
    in: <function BaseEventLoop.__del__ ...> ... Bad file descriptor" on stderr after a
    successful plan (CPython 3.11 Lib/asyncio/base_events.py ``__del__``). Only the real
    process does this; a test calling ``app`` keeps its loop.
    """
    import asyncio
    import sys

    if "asyncio" not in sys.modules or "pulumi" not in sys.modules:
        return  # nothing ran on a loop (verify, --help): keep start-up and exit cheap
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return
    if loop.is_closed() or loop.is_running():
        return
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


if __name__ == "__main__":
    main()
