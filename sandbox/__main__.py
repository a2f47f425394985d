"""`python -m sandbox [--host H] [--port P] [--state-dir D] [--seed N]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.server import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_SEED, serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    serve(args.host, args.port, args.state_dir, args.seed)


if __name__ == "__main__":
    main()
