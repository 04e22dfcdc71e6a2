"""``python -m minietcd.lab.faultproxy``: run the fault proxy like ``toxiproxy-server``.

Takes toxiproxy-server's flags, in Go's spelling (``-host x``, ``-port=8474``)
or with two dashes, so scripts can swap one binary for the other. Once the
API is listening it prints one line to stdout, ending with the API's URL,
and writes nothing else there; logs go to stderr, levelled by ``LOG_LEVEL``
as Toxiproxy's are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from minietcd.lab.faultproxy.server import VERSION, FaultProxyServer

# The stdout line starts with this and ends with the URL; minietcd.lab.toxiproxy reads it.
LISTENING_BANNER = "faultproxy: Toxiproxy-compatible API listening on"
# If set to a pid, exit when that process is no longer our parent, so a test
# run killed hard does not leave servers behind.
PARENT_PID_ENV = "MINIETCD_FAULTPROXY_PARENT_PID"

_LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


def _go_bool(text: str) -> bool:
    return text.lower() in {"1", "t", "true"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m minietcd.lab.faultproxy",
        description="Toxiproxy-compatible fault proxy (minietcd lab).",
        add_help=False,
        allow_abbrev=False,
    )
    parser.add_argument("-h", "-help", "--help", action="help", help="show this help and exit")
    parser.add_argument(
        "-host", "--host", default="localhost", help="host for the API to listen on (default localhost)"
    )
    parser.add_argument(
        "-port",
        "--port",
        default="8474",
        help="port for the API to listen on; 0 picks a free one (default 8474)",
    )
    parser.add_argument("-config", "--config", default="", help="JSON file of proxies to create on startup")
    parser.add_argument(
        "-seed", "--seed", type=int, default=None, help="seed for toxicity, jitter and slicing"
    )
    parser.add_argument("-version", "--version", action="store_true", help="print the version and exit")
    # Accepted so toxiproxy-server command lines work; there are no metrics here.
    for flag in ("proxy-metrics", "runtime-metrics"):
        parser.add_argument(
            f"-{flag}",
            f"--{flag}",
            nargs="?",
            const="true",
            default="false",
            type=_go_bool,
            help=argparse.SUPPRESS,
        )
    return parser


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    stop.set()


async def serve(args: argparse.Namespace) -> int:
    try:
        port = int(args.port)
    except ValueError:
        print(f"error: invalid port {args.port!r}", file=sys.stderr)
        return 1
    server = FaultProxyServer(args.host, port, seed=args.seed)
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as handle:
                config = json.load(handle)
            _done, err = await server.populate(config)
            if err is not None:
                logging.error("failed to populate proxies from %s: %s", args.config, err.message)
        except Exception as exc:  # Toxiproxy logs a bad config and carries on
            logging.error("error reading config file %s: %s", args.config, exc)
    try:
        await server.start()
    except OSError as exc:
        print(f"error: listen tcp {args.host}:{args.port}: {exc}", file=sys.stderr)
        await server.close()
        return 1
    print(f"{LISTENING_BANNER} {server.url}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    watcher: asyncio.Task[None] | None = None
    parent = os.environ.get(PARENT_PID_ENV)
    if parent and parent.isdigit():
        watcher = loop.create_task(_watch_parent(int(parent), stop))
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await server.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"toxiproxy-server version {VERSION}")
        return 0
    level = _LOG_LEVELS.get(os.environ.get("LOG_LEVEL", "info").lower(), logging.INFO)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
