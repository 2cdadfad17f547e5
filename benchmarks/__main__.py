"""Print every benchmark table: ``.venv/bin/python -m benchmarks [--quick]``.

``--quick`` runs each benchmark once at its smallest size (a smoke run, not figures).
"""

from __future__ import annotations

import os
import platform
import sys

from benchmarks import emulator, plan, startup, verify


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}\n")
    print(startup.main(repeat=1 if quick else 5))
    print(plan.main(repeat=1 if quick else 3))
    print(emulator.main(nodes=10 if quick else 5_000, pages=1 if quick else 5))
    print(verify.main(sizes=(10,) if quick else verify.SIZES))


if __name__ == "__main__":
    main(sys.argv[1:])
