"""Serve a scenario on a loopback port until Ctrl-C.

Examples:
  python -m tests.kubeapi serve --scenario reference-platform --kubeconfig /tmp/kc.yaml
  python -m tests.kubeapi serve --scenario empty --kubeconfig /tmp/kc.yaml --port 6443 --minor 1.34
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .scenarios import SCENARIOS, build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kubeapi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a scenario until interrupted")
    serve.add_argument("--scenario", default="empty", choices=sorted(SCENARIOS))
    serve.add_argument("--kubeconfig", required=True, type=Path)
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--minor", default="1.35")
    args = parser.parse_args(argv)
    kube = build(args.scenario, minor=args.minor).start(port=args.port)
    # Write to a temporary name first so a watcher never reads half a kubeconfig.
    tmp = args.kubeconfig.with_suffix(".tmp")
    kube.write_kubeconfig(tmp)
    tmp.replace(args.kubeconfig)
    print(f"serving {args.scenario} (Kubernetes {args.minor}) at {kube.url}; "
          f"kubeconfig {args.kubeconfig}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    kube.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
