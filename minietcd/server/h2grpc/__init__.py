"""gRPC over HTTP/2 on the event loop: the client port's gRPC without grpcio's server.

Why: under issue 15's ``put1`` load a member spends about 430 us of CPU per put, and its own work
(the application API, Raft, the WAL and apply, measured in one process without gRPC) is about
60 of them: the rest is grpcio's server (its Cython layer, the completion-queue thread that
hands every event to the loop, grpc core's own threads) and the multiplexer's hop to it. A bare
HTTP/2 server on the loop answering the same puts from the same API took 90 us per put
(docs/benchmarks.md, phase 7).

A member's multiplexer hands plain gRPC connections to :class:`H2GrpcServer` instead of
splicing them to grpcio. grpcio still serves what this engine does not (yet): https URLs (it does
the TLS handshake, reads client certificates, and runs the certificate gates), ``unix://`` URLs
and the client URLs of ``--listen-client-http-urls`` (where grpcio listens itself).
``MINIETCD_GRPC_ENGINE=grpcio`` in a member's environment sends plain connections to grpcio
too, as before this engine (to compare the two, or to rule this one out). The engine runs the
very handlers registered with grpcio (``v3rpc/services.py``'s method table: decode guard and
metrics included), so both answer with the same messages and errors.

Modules: ``server`` (the member's engine: method lookup, open connections, graceful stop),
``connection`` (one client connection: frames in, flow control, frames out), ``call`` (one call:
messages, handler, status, the servicer's context), ``frames`` (HTTP/2 frames, the header blocks
a server sends), ``headers`` (request header blocks: an HPACK decoder, over the RFC's tables
in ``hpack_tables``). All but this file load with the first gRPC connection: an idle member that
nobody asks over gRPC keeps them out of its memory.
"""

from __future__ import annotations

import os
from typing import Final

#: The environment variable that can send plain client connections back to grpcio, and how.
ENGINE_ENV: Final = "MINIETCD_GRPC_ENGINE"
GRPCIO: Final = "grpcio"


def enabled() -> bool:
    """Does this engine serve plain client URLs (unless ``MINIETCD_GRPC_ENGINE=grpcio``)?"""
    return os.environ.get(ENGINE_ENV) != GRPCIO
