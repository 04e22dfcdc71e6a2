"""A Toxiproxy-compatible fault-injection proxy in asyncio.

The lab drives every peer link through Toxiproxy. Where no Toxiproxy server
can be installed this package stands in for it: same HTTP API, same toxics,
same semantics as Shopify/toxiproxy v2, so lab code written against one runs
unchanged against the other. Run it with ``python -m minietcd.lab.faultproxy``
or in-process with ``await start_server(host, port)``; see
``minietcd.lab.toxiproxy`` for picking whichever server is available.

Toxiproxy behaviour kept on purpose, because lab code meets it on the real server:

- the ``timeout`` toxic *discards* what reaches it, and removing it *closes*
  the connections it was on (since 2.1.1); to pause a link and resume it
  intact, use ``bandwidth`` with ``rate: 0`` and remove it;
- ``reset_peer`` sends an RST only on connections opened while it was in
  place (SO_LINGER 0 is set when a link starts); on older ones it is a FIN;
- toxicity is rolled whenever a stage (re)starts: on connect, and for the
  stages next to any toxic added, updated or removed later;
- there is no half-close: either side closing ends the connection;
- creating a toxic answers 200; ``/populate`` answers ``"proxies": null``
  when nothing was created.

Where this server differs:

- error bodies carry ``Content-Type: application/json`` (Go's ``http.Error``
  sends the same JSON as text/plain);
- no ``/metrics`` and no HTTP timeout middleware; ``-proxy-metrics`` and
  ``-runtime-metrics`` are accepted and ignored;
- configurations Toxiproxy mishandles are tamed: ``bandwidth`` with a
  negative rate stalls like rate 0 (Go panics), ``slicer`` with sizes that
  would recurse forever is clamped;
- channels between toxics hold one chunk where Go's are unbuffered.
"""

from __future__ import annotations

from minietcd.lab.faultproxy.server import VERSION, FaultProxyServer, start_server

__all__ = ["VERSION", "FaultProxyServer", "start_server"]
