"""``minietcd-lab discovery serve``: a discovery service for etcd's ``--discovery`` URLs
(:mod:`minietcd.lab.discovery_service`, docs/discovery.md).
"""

from __future__ import annotations

import click

from minietcd.errors import LabError
from minietcd.lab.cli_common import lab_errors


@click.group()
def discovery() -> None:
    """A discovery service for etcd's --discovery URLs, like discovery.etcd.io (docs/discovery.md)."""


@discovery.command("serve")
@click.option("--listen", default="127.0.0.1:8087", show_default=True, help="host:port to serve HTTP on")
@click.option(
    "--endpoints", default="127.0.0.1:2379", show_default=True,
    help="comma-separated client URLs of the etcd or minietcd cluster that stores the tokens",
)  # fmt: skip
@click.option("--prefix-url", default="", help="what token URLs start with (default: http://<listen>)")
@click.option("--cacert", default="", help="CA bundle to verify the backing cluster's https endpoints")
@lab_errors
def discovery_serve(listen: str, endpoints: str, prefix_url: str, cacert: str) -> None:
    """Serve /new?size=N and the token URLs (etcd's v2 discovery protocol) until Ctrl-C."""
    import asyncio
    import logging
    import signal

    from minietcd.lab.discovery_service import serve

    if ":" not in listen or not listen.rpartition(":")[2].isdigit():
        raise LabError(f"--listen {listen!r}: want host:port")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        options: dict[str, object] = {"ca_file": cacert} if cacert else {}
        eps = [e.strip() for e in endpoints.split(",") if e.strip()]
        try:
            await serve(listen, eps, prefix_url, stop=stop, client_options=options)
        except OSError as e:
            raise LabError(f"cannot serve on {listen}: {e.strerror or e}") from None

    asyncio.run(run())


COMMANDS: tuple[click.Command, ...] = (discovery,)
