#!/usr/bin/env python3
"""Write a docker compose file for a minietcd cluster of SIZE members (1..9), peers via Toxiproxy.

Compose files have no loops, and every member's ``--initial-cluster`` must list exactly the SIZE
members, so the file is generated (by ``minietcd.lab.compose_file``, which describes the
services); the top-level ``docker-compose.yml`` is this script's output for the default size 3
(``--check`` verifies that). See docs/compose.md.

    python3 scripts/compose-cluster.py --size 5 -o docker-compose.size5.yml
    docker compose -f docker-compose.size5.yml up -d --wait      # or docker-compose -f ... up -d

The one setting is the size: ``--size`` or else ``$MINIETCD_SIZE`` (default 3). The output works with
both the docker compose v2 plugin and Debian's docker-compose 1.29. ``minietcd-lab --compose up``
writes the same files and drives the cluster (docs/compose.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout, with or without minietcd installed
    sys.path.insert(0, str(REPO))

from minietcd.lab.compose_file import (  # noqa: E402
    DEFAULT_SIZE,
    MAX_SIZE,
    host_ports,
    link_port,
    max_port_offset,
    peer_url,
    render,
    toxiproxy_host_port,
)

__all__ = ["MAX_SIZE", "host_ports", "link_port", "main", "peer_url", "render", "toxiproxy_host_port"]


def _size_default() -> int:
    raw = os.environ.get("MINIETCD_SIZE", "")
    try:
        return int(raw) if raw else DEFAULT_SIZE
    except ValueError:
        raise SystemExit(f"compose-cluster: MINIETCD_SIZE must be 1..{MAX_SIZE}, not {raw!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a docker compose file for a minietcd cluster of 1..9 members (docs/compose.md)."
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help=f"number of members, 1..{MAX_SIZE} (default: $MINIETCD_SIZE, else {DEFAULT_SIZE})",
    )
    parser.add_argument("-o", "--output", default="-", help="file to write (default: standard output)")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="add this to every published host port (to run next to another cluster)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if --output (default: the top-level docker-compose.yml) differs from the output",
    )
    args = parser.parse_args(argv)
    size = args.size if args.size is not None else _size_default()
    if not 1 <= size <= MAX_SIZE:
        parser.error(f"--size must be 1..{MAX_SIZE}, not {size}")
    if not 0 <= args.port_offset <= max_port_offset():
        parser.error(f"--port-offset must be 0..{max_port_offset()}")
    text = render(size, args.port_offset)
    if args.check:
        path = Path(REPO / "docker-compose.yml" if args.output == "-" else args.output)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            print(f"compose-cluster: {path} differs from the output for --size {size}", file=sys.stderr)
            return 1
        return 0
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
