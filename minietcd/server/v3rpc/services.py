"""Every etcd v3 service of the gRPC face, registered on a member's client server at once.

The generated ``add_<Service>Servicer_to_server`` functions give each method its handler; here
they fill a :class:`MethodTable` instead of the server, each handler is guarded once
(:func:`~minietcd.server.v3rpc.decode.guard_handler`: grpc-go's answer to undecodable bytes),
and the server gets the table as one generic handler.

Why not let the generated code register on the server directly (it registers every method as
a *registered method* too): grpc.aio's server keeps one pending "next call" future per
registered method and waits on all of them with ``asyncio.wait`` after every call it accepts.
With etcd's 46 methods (Auth's 16 included) that is 47 futures' callbacks added and removed
per accepted call, in Python, on the loop; a single generic handler keeps one. Together with
no interceptor (the decode guard and the grpc_server_* counting live in each method's one
wrapper: v3rpc/decode.py), that is a measurable share of a unary call's cost
(docs/benchmarks.md, issue 15).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from minietcd.api.etcdserverpb import rpc_pb2_grpc
from minietcd.api.v3electionpb import v3election_pb2_grpc
from minietcd.api.v3lockpb import v3lock_pb2_grpc
from minietcd.server.api import Api
from minietcd.server.v3rpc.auth import AuthService
from minietcd.server.v3rpc.cluster import ClusterService
from minietcd.server.v3rpc.decode import guard_handler
from minietcd.server.v3rpc.election import ElectionService
from minietcd.server.v3rpc.kv import KVService
from minietcd.server.v3rpc.lease import LeaseService
from minietcd.server.v3rpc.lock import LockService
from minietcd.server.v3rpc.maintenance import MaintenanceService
from minietcd.server.v3rpc.watch import WatchService


class MethodTable(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc has no type hints: the base is Any
    """Method handlers by full method name (``/etcdserverpb.KV/Put``), guarded, served as one
    generic handler. Stands in for the server when a generated ``add_*_to_server`` is called."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        for name, handler in handlers.items():
            method = f"/{service}/{name}"
            self._handlers[method] = guard_handler(method, handler)

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """The generated code registers each service twice: its registered methods (taken
        above) and a generic handler for the same methods (not needed)."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(details.method)

    def methods(self) -> list[str]:
        return sorted(self._handlers)


#: (generated registration function, servicer class, the API part it adapts)
_SERVICES: list[tuple[Callable[[Any, Any], None], Callable[[Any], Any], Callable[[Api], Any]]] = [
    (rpc_pb2_grpc.add_KVServicer_to_server, KVService, lambda api: api.kv),
    (rpc_pb2_grpc.add_ClusterServicer_to_server, ClusterService, lambda api: api.cluster),
    (rpc_pb2_grpc.add_MaintenanceServicer_to_server, MaintenanceService, lambda api: api.maintenance),
    (rpc_pb2_grpc.add_LeaseServicer_to_server, LeaseService, lambda api: api.lease),
    (rpc_pb2_grpc.add_AuthServicer_to_server, AuthService, lambda api: api.auth),
    (rpc_pb2_grpc.add_WatchServicer_to_server, WatchService, lambda api: api.watch),
    (v3lock_pb2_grpc.add_LockServicer_to_server, LockService, lambda api: api.lock),
    (v3election_pb2_grpc.add_ElectionServicer_to_server, ElectionService, lambda api: api.election),
]


def client_services(api: Api) -> MethodTable:
    """etcd's KV, Cluster, Maintenance, Lease, Auth, Watch, Lock and Election services on ``api``."""
    table = MethodTable()
    for register, servicer, part in _SERVICES:
        register(servicer(part(api)), table)
    return table


def add_client_services(server: grpc.aio.Server, api: Api) -> None:
    """Serve every etcd v3 service of ``api`` on ``server`` (not started yet)."""
    server.add_generic_rpc_handlers((client_services(api),))
