"""Listeners are bound before the data dir is touched; a taken port is Go's error (listeners.py)."""

from __future__ import annotations

import socket

import pytest

from minietcd.errors import ConfigError, ListenError
from minietcd.server.listeners import bind_grpc, bind_sockets, check_bindable, close_grpc
from minietcd.server.urls import parse_url


def _taken() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, int(s.getsockname()[1])


def test_a_taken_port_is_gos_error() -> None:
    s, port = _taken()
    with s:
        for bind in (
            lambda: check_bindable(parse_url(f"http://127.0.0.1:{port}")),
            lambda: bind_sockets([parse_url(f"http://127.0.0.1:{port}")]),
            lambda: bind_grpc([parse_url(f"http://127.0.0.1:{port}")], credentials=None, options=[]),
        ):
            with pytest.raises(ListenError) as info:
                bind()
            assert str(info.value) == f"listen tcp 127.0.0.1:{port}: bind: address already in use"


def test_an_address_not_on_this_machine_is_gos_error() -> None:
    with pytest.raises(
        ListenError, match=r"^listen tcp 192\.0\.2\.1:2379: bind: cannot assign requested address$"
    ):
        check_bindable(parse_url("http://192.0.2.1:2379"))  # TEST-NET-1: never local; nothing is sent


def _free_port() -> int:
    s, port = _taken()
    s.close()
    return port


async def test_a_bound_server_holds_its_port_before_it_starts() -> None:
    url = parse_url(f"http://127.0.0.1:{_free_port()}")
    server = bind_grpc([url], credentials=None, options=[])
    try:
        # No SO_REUSEPORT (gRPC's default): a second member on the same port fails, as in etcd.
        with pytest.raises(ListenError):
            bind_grpc([url], credentials=None, options=[])
        with pytest.raises(ListenError):
            check_bindable(url)
    finally:
        await close_grpc(server)
    check_bindable(url)  # released


def test_https_without_credentials_is_refused_before_binding() -> None:
    with pytest.raises(ConfigError, match=r"^peer URL https://127\.0\.0\.1:1 is https but no TLS"):
        bind_grpc([parse_url("https://127.0.0.1:1")], credentials=None, options=[], what="peer")
