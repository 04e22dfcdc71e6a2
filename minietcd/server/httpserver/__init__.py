"""A small HTTP/1.1 server for a member's HTTP side (etcd's gateway, /health, /metrics...): h11
parses and frames, wsproto does WebSockets, these modules do the rest (docs/server.md "HTTP").

It replaced aiohttp in the server: aiohttp's package loads its HTTP client and its framework's
dependencies with it, 11-14 MiB of a member's idle memory; h11 costs 0.5 MiB (docs/benchmarks.md).
"""

from __future__ import annotations

from minietcd.server.httpserver.connection import Stream
from minietcd.server.httpserver.messages import (
    TEXT_UTF8,
    BodyTooLarge,
    BodyUnreadable,
    Handler,
    Headers,
    Reply,
    Request,
    Response,
    Streamed,
    json_response,
    text_response,
)
from minietcd.server.httpserver.server import HttpServer

__all__ = [
    "TEXT_UTF8",
    "BodyTooLarge",
    "BodyUnreadable",
    "Handler",
    "Headers",
    "HttpServer",
    "Reply",
    "Request",
    "Response",
    "Stream",
    "Streamed",
    "json_response",
    "text_response",
]
