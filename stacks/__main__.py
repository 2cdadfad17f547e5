"""The Pulumi program (``Pulumi.yaml`` → ``main: stacks/``): config → target → addons.

Pulumi's Python host runs this folder as a script (``runpy.run_path``), outside any package.
Naming the package here (PEP 366) lets the relative import below work at run time and lets
a tool that reads the tree find ``stacks/program.py`` from it.
"""

if not __package__:
    __package__ = "aicp.stacks"

from .program import main  # noqa: E402  (after the package is named)

main()
