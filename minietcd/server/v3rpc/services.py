"""Every etcd v3 service of the gRPC face, registered on a member's client server at once.

Each method's handler is made from the service's protobuf descriptor (its request and response
messages, whether either side streams) and the servicer's method of the same name, as the
generated ``add_<Service>Servicer_to_server`` functions make it; each handler is guarded once
(:func:`~minietcd.server.v3rpc.decode.guard_handler`: grpc-go's answer to undecodable bytes),
and the server gets the :class:`MethodTable` as one generic handler. The generated
``*_pb2_grpc`` modules (client stubs, servicer bases, registration functions) are not loaded
by a member at all: 0.4 MiB of its idle memory (docs/benchmarks.md).

Why one generic handler, not the generated code registering on the server directly (it
registers every method as a *registered method* too): grpc.aio's server keeps one pending "next
call" future per registered method and waits on all of them with ``asyncio.wait`` after every
call it accepts. With etcd's 46 methods (Auth's 16 included) that is 47 futures' callbacks added and removed
per accepted call, in Python, on the loop; a single generic handler keeps one. Together with
no interceptor (the decode guard and the grpc_server_* counting live in each method's one
wrapper: v3rpc/decode.py), that is a measurable share of a unary call's cost
(docs/benchmarks.md, issue 15).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.v3electionpb import v3election_pb2
from minietcd.api.v3lockpb import v3lock_pb2
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
    generic handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_service(self, service: ServiceDescriptor, servicer: object) -> None:
        """Every method of ``service``, served by ``servicer``'s method of the same name."""
        for m in service.methods:
            request = GetMessageClass(m.input_type)
            response = GetMessageClass(m.output_type)
            make = _HANDLER_KINDS[m.client_streaming, m.server_streaming]
            handler = make(
                getattr(servicer, m.name, _unimplemented),
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            )
            method = f"/{service.full_name}/{m.name}"
            self._handlers[method] = guard_handler(method, handler)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(details.method)

    def methods(self) -> list[str]:
        return sorted(self._handlers)


async def _unimplemented(request: object, context: grpc.aio.ServicerContext) -> None:
    """A method the servicer lacks: the generated servicer base's answer."""
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")


#: grpc's handler maker by (client streams, server streams).
_HANDLER_KINDS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}

_RPC = rpc_pb2.DESCRIPTOR.services_by_name
#: (service, servicer class, the API part it adapts)
_SERVICES: list[tuple[ServiceDescriptor, Callable[[Any], object], Callable[[Api], Any]]] = [
    (_RPC["KV"], KVService, lambda api: api.kv),
    (_RPC["Cluster"], ClusterService, lambda api: api.cluster),
    (_RPC["Maintenance"], MaintenanceService, lambda api: api.maintenance),
    (_RPC["Lease"], LeaseService, lambda api: api.lease),
    (_RPC["Auth"], AuthService, lambda api: api.auth),
    (_RPC["Watch"], WatchService, lambda api: api.watch),
    (v3lock_pb2.DESCRIPTOR.services_by_name["Lock"], LockService, lambda api: api.lock),
    (v3election_pb2.DESCRIPTOR.services_by_name["Election"], ElectionService, lambda api: api.election),
]


def client_services(api: Api) -> MethodTable:
    """etcd's KV, Cluster, Maintenance, Lease, Auth, Watch, Lock and Election services on ``api``."""
    table = MethodTable()
    for service, servicer, part in _SERVICES:
        table.add_service(service, servicer(part(api)))
    return table

