"""Listeners are bound before the data dir is touched; a taken port is Go's error (listeners.py)."""

from __future__ import annotations

import socket
from pathlib import Path

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


# --- unix sockets ------------------------------------------------------------------------------


def test_unix_urls_bind_the_socket_file_named_by_host_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # etcd binds unix://localhost:2379 as ./localhost:2379
    url = parse_url("unix://localhost:2379")
    assert url.grpc_target == "unix:localhost:2379"
    check_bindable(url)
    assert not (tmp_path / "localhost:2379").exists()  # the check leaves nothing behind
    (sock,) = bind_sockets([url])
    with sock:
        assert (tmp_path / "localhost:2379").is_socket()
        # A live listener there is a taken address, in Go's words; for gRPC servers too.
        for bind in (
            lambda: check_bindable(url),
            lambda: bind_sockets([url]),
            lambda: bind_grpc([url], credentials=None, options=[]),
        ):
            with pytest.raises(ListenError) as info:
                bind()
            assert str(info.value) == "listen unix localhost:2379: bind: address already in use"
    # Closed without unlinking: a stale socket, which the next bind replaces.
    assert (tmp_path / "localhost:2379").is_socket()
    check_bindable(url)
    (again,) = bind_sockets([url])
    again.close()


def test_a_file_that_is_not_a_socket_is_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "localhost:2379").write_text("precious")
    with pytest.raises(ListenError, match=r"^listen unix localhost:2379: bind: address already in use$"):
        check_bindable(parse_url("unix://localhost:2379"))
    assert (tmp_path / "localhost:2379").read_text() == "precious"


def test_a_directory_in_the_way_is_a_taken_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "localhost:1").mkdir()  # a directory where the socket would go: never removed
    with pytest.raises(ListenError, match=r"^listen unix localhost:1: bind: address already in use$"):
        check_bindable(parse_url("unixs://localhost:1"))


async def test_a_grpc_server_on_a_unix_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = parse_url("unix://localhost:2379")
    server = bind_grpc([url], credentials=None, options=[])
    try:
        assert (tmp_path / "localhost:2379").is_socket()
        with pytest.raises(ListenError):
            check_bindable(url)  # gRPC listens from the moment the port is added
    finally:
        await close_grpc(server)
    check_bindable(url)  # released (gRPC removes its socket file when it stops)
