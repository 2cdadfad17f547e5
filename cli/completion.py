"""``aicp --install-completion SHELL`` and ``--show-completion SHELL``: the shell is named.

Typer's own options take no value and detect the shell from the parent process, so
``--install-completion zsh`` installed bash completion from a bash parent and ignored the
word ``zsh`` (typer 0.29 ``completion.py``, ``_install_completion_placeholder_function``).
Here the shell is a required choice; installing and the scripts are Typer's
(``install_callback``, ``show_callback``), which take a named shell as is.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from typer._completion_classes import completion_init
from typer.completion import install_callback, show_callback


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"
    pwsh = "pwsh"


SHELLS = tuple(s.value for s in Shell)

# Typer's completion classes answer the scripts Typer writes (``complete_bash`` ...); Click's
# own would not understand them.
completion_init()


# ``ctx`` and ``param`` are the click objects Typer hands its callbacks (typer vendors
# click as ``typer._click``), passed on unread.
def install(ctx: Any, param: Any, value: Any) -> Any:
    if value is None or ctx.resilient_parsing:
        return value
    return install_callback(ctx, param, getattr(value, "value", str(value)))


def show(ctx: Any, param: Any, value: Any) -> Any:
    if value is None or ctx.resilient_parsing:
        return value
    return show_callback(ctx, param, getattr(value, "value", str(value)))
