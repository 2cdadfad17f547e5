"""CLI start-up: ``aicp --help`` and ``aicp verify --help`` (target < 0.5 s)."""

from __future__ import annotations

from benchmarks.common import AICP, table, timed

COMMANDS = (["--help"], ["verify", "--help"], ["plan", "--help"])


def main(repeat: int = 5) -> str:
    rows = []
    for args in COMMANDS:
        seconds, _ = timed([AICP, *args], repeat=repeat)
        rows.append([f"aicp {' '.join(args)}", f"{seconds:.3f}"])
    return table(f"CLI start-up (best of {repeat}; target < 0.5 s)", ["command", "wall s"],
                 rows)


if __name__ == "__main__":
    print(main())
