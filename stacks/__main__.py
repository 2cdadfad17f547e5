"""The Pulumi program (``Pulumi.yaml`` → ``main: stacks/``): config → target → addons."""

from aicp.stacks.platform import main

main()
