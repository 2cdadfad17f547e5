"""Print every benchmark table: ``.venv/bin/python -m benchmarks [--quick]``."""

from __future__ import annotations

import platform
import sys

from benchmarks import plan, startup


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"python {platform.python_version()}\n")
    print(startup.main(repeat=1 if quick else 5))
    print(plan.main(repeat=1 if quick else 3))


if __name__ == "__main__":
    main(sys.argv[1:])
