"""One client URL, both protocols: how a connection's first bytes choose gRPC or HTTP
(clientmux.py), and the splicing thread that joins a gRPC connection to grpcio (splicer.py)."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from minietcd.server import clientmux
from minietcd.server.clientmux import (
    H2_PREFACE,
    Route,
    alpn_protocols,
    classify_plain,
    classify_tls,
    remote_address,
)
from minietcd.server.etcdhttp import clean_path
from minietcd.server.splicer import Splicer


def client_hello(alpn: list[str] | None) -> bytes:
    """The bytes a Python TLS client sends first (its ClientHello), offering ``alpn``."""
    ctx = ssl.create_default_context()
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_plain_connections() -> None:
    assert classify_plain(H2_PREFACE + b"\x00\x00") is Route.GRPC
    assert classify_plain(H2_PREFACE[:10]) is None  # could still be a gRPC client: wait
    assert classify_plain(b"POST /v3/kv/put HTTP/1.1\r\n") is Route.HTTP
    assert classify_plain(b"PRI * HTTP/1.1") is Route.HTTP  # diverges from the preface
    assert classify_plain(b"G") is Route.HTTP


def test_tls_connections_by_alpn() -> None:
    assert classify_tls(client_hello(["h2"])) is Route.GRPC  # etcdctl, grpc-go
    assert classify_tls(client_hello(["grpc-exp", "h2"])) is Route.GRPC  # grpcio
    assert classify_tls(client_hello(["h2", "http/1.1"])) is Route.HTTP  # curl
    assert classify_tls(client_hello(["http/1.1"])) is Route.HTTP  # requests, urllib3
    assert classify_tls(client_hello(None)) is Route.HTTP  # no ALPN at all
    hello = client_hello(["h2"])
    assert alpn_protocols(hello[5:]) == [b"h2"]
    assert classify_tls(hello[:40]) is None  # the ClientHello has not all arrived
    assert classify_tls(b"GET / HTTP/1.1\r\n") is Route.PLAIN_ON_TLS
    assert classify_tls(b"\x00\x01garbage") is Route.HTTP  # not TLS: its handshake fails


def test_go_clean_path() -> None:
    assert clean_path("/v3/kv/range") == "/v3/kv/range"
    assert clean_path("//health") == "/health"
    assert clean_path("/v3//kv/../kv/range") == "/v3/kv/range"
    assert clean_path("/v3/") == "/v3/"
    assert clean_path("") == "/"


def _recv_all(s: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def test_splicer_joins_two_connections_both_ways() -> None:
    splicer = Splicer()
    try:
        client, front = socket.socketpair()
        back, server = socket.socketpair()
        splicer.join(front, back)
        big = bytes(range(256)) * 4096  # 1 MiB: more than a pipe and a socket buffer hold
        client.sendall(b"hello")
        assert _recv_all(server, 5) == b"hello"
        server.sendall(b"world")
        assert _recv_all(client, 5) == b"world"
        client.setblocking(True)
        sender = __import__("threading").Thread(target=client.sendall, args=(big,))
        sender.start()
        assert _recv_all(server, len(big)) == big  # backpressure: nothing lost, all in order
        sender.join()
        # An end of stream is passed on; the pair closes when both ends are done.
        client.shutdown(socket.SHUT_WR)
        assert _recv_all(server, 1) == b""
        server.close()
        assert _recv_all(client, 1) == b""
        deadline = time.monotonic() + 5
        while splicer.open_pairs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert splicer.open_pairs == 0
        client.close()
    finally:
        splicer.close()


def test_splicer_close_ends_every_pair() -> None:
    splicer = Splicer()
    client, front = socket.socketpair()
    back, server = socket.socketpair()
    splicer.join(front, back)
    client.sendall(b"x")
    assert _recv_all(server, 1) == b"x"
    splicer.close()
    assert _recv_all(client, 1) == b"" and _recv_all(server, 1) == b""
    client.close()
    server.close()


def test_remote_address_is_gos_remote_addr_and_the_client_behind_the_multiplexer() -> None:
    assert remote_address("ipv4:127.0.0.1:52744") == "127.0.0.1:52744"
    assert remote_address("ipv6:[::1]:5") == "[::1]:5"
    assert remote_address("unix:/tmp/etcd.sock") == "unix:/tmp/etcd.sock"
    clientmux._CLIENTS["minietcd-1-client-ab"] = "10.0.0.7:41000"
    try:
        assert remote_address("unix-abstract:minietcd-1-client-ab") == "10.0.0.7:41000"
    finally:
        del clientmux._CLIENTS["minietcd-1-client-ab"]
    assert remote_address("unix-abstract:minietcd-1-client-ab") == "unix-abstract:minietcd-1-client-ab"
