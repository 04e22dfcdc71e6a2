"""The gRPC face reads what a call says beyond its message into a RequestContext."""

from __future__ import annotations

from typing import Any

from minietcd.server.api import RequestContext
from minietcd.server.v3rpc.guard import request_context


class Call:
    """The parts of grpc.aio.ServicerContext that request_context reads."""

    def __init__(self, metadata: list[tuple[str, Any]], auth: dict[str, list[bytes]], peer: str) -> None:
        self._metadata = metadata
        self._auth = auth
        self._peer = peer

    def invocation_metadata(self) -> list[tuple[str, Any]]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def peer(self) -> str:
        return self._peer


def test_metadata_and_certificate() -> None:
    call = Call(
        [("user-agent", "etcdctl"), ("hasleader", "true"), ("token", "abc.def")],
        {"transport_security_type": [b"ssl"], "x509_common_name": [b"root"]},
        "ipv4:127.0.0.1:5000",
    )
    assert request_context(call) == RequestContext(
        requires_leader=True, auth_token="abc.def", client_cn="root"
    )


def test_a_plain_call_asks_nothing() -> None:
    assert request_context(Call([("hasleader", "false")], {}, "")) == RequestContext()
