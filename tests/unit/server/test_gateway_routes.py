"""The gateway's route table names real API methods; its error table covers every gRPC code."""

from __future__ import annotations

import inspect

from minietcd.errors import GrpcCode, LeaseNotFoundError, NoLeaderError
from minietcd.server import api
from minietcd.server.gateway.routes import ROUTES, Kind
from minietcd.server.gateway.status import HTTP_STATUS, GatewayStatus, error_body, status_of, stream_error

FACETS = {"kv": api.KV, "lease": api.Lease, "watch": api.Watch, "cluster": api.Cluster,
          "maintenance": api.Maintenance, "lock": api.Lock, "election": api.Election}  # fmt: skip


def test_every_route_is_an_api_method_of_its_kind() -> None:
    auth = getattr(api, "Auth", None)  # the Auth facet, once it is there
    facets = {**FACETS, **({"auth": auth} if auth is not None else {})}
    for route in ROUTES:
        cls = facets.get(route.facet)
        if cls is None:
            assert route.facet == "auth", route
            continue
        method = getattr(cls, route.method, None)
        assert method is not None, f"{route.path}: {cls.__name__} has no {route.method}"
        streams = inspect.isasyncgenfunction(method)
        assert streams == (route.kind is not Kind.UNARY), route
        assert route.path.startswith("/v3/") and route.grpc_service and route.grpc_method, route


def test_every_grpc_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(GrpcCode)
    assert status_of(LeaseNotFoundError()) == (GrpcCode.NOT_FOUND, "etcdserver: requested lease not found")
    assert status_of(NoLeaderError())[0] is GrpcCode.UNAVAILABLE
    assert status_of(ValueError("boom")) == (GrpcCode.UNKNOWN, "boom")
    assert status_of(GatewayStatus(GrpcCode.INVALID_ARGUMENT, "bad")) == (GrpcCode.INVALID_ARGUMENT, "bad")
    assert error_body(GrpcCode.NOT_FOUND, "x") == {"error": "x", "message": "x", "code": 5}
    assert stream_error(GrpcCode.UNAVAILABLE, "y") == {
        "error": {"grpc_code": 14, "http_code": 503, "message": "y", "http_status": "Service Unavailable"}
    }
