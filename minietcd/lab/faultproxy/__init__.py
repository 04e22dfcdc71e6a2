"""A Toxiproxy-compatible fault-injection proxy in asyncio.

The lab drives every peer link through Toxiproxy. Where no Toxiproxy server
can be installed this package stands in for it: same HTTP API, same toxics,
same semantics as Shopify/toxiproxy v2, so lab code written against one runs
unchanged against the other. Run it with ``python -m minietcd.lab.faultproxy``
or in-process with ``await start_server(host, port)``; see
``minietcd.lab.toxiproxy`` for picking whichever server is available.
"""

from __future__ import annotations

from minietcd.lab.faultproxy.server import VERSION, FaultProxyServer, start_server

__all__ = ["VERSION", "FaultProxyServer", "start_server"]
