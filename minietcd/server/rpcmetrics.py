"""go-grpc-prometheus's server metrics, as etcd exports them: ``grpc_server_started_total``,
``grpc_server_handled_total`` (by ``grpc_code``), ``grpc_server_msg_received_total`` and
``grpc_server_msg_sent_total``, labelled ``grpc_type``, ``grpc_service``, ``grpc_method``.

etcd registers every method of its services at start (``grpc_prometheus.Register``), so each
series is there from the first scrape, at zero; so are they here (from the generated service
descriptors). A call is counted by the face that serves it: the gRPC face where it guards each
method's handler, the JSON gateway per route (etcd's gateway calls etcd's own gRPC server, so
its calls are counted the same). The counts are plain integers incremented on the event loop,
read when scraped: counting costs a few attribute increments per call, no lock, no interceptor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from google.protobuf.descriptor import FileDescriptor
from prometheus_client.core import REGISTRY, CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.v3electionpb import v3election_pb2
from minietcd.api.v3lockpb import v3lock_pb2
from minietcd.errors import GrpcCode

#: Go's codes.Code.String() of each gRPC code (the grpc_code label).
CODE_NAMES: Final = (
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
    "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
    "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
)  # fmt: skip
_LABELS: Final = ("grpc_type", "grpc_service", "grpc_method")


class Rpc:
    """The counts of one method."""

    __slots__ = ("handled", "method", "received", "sent", "service", "started", "type")

    def __init__(self, service: str, method: str, kind: str) -> None:
        self.service, self.method, self.type = service, method, kind
        self.started = 0
        self.received = 0
        self.sent = 0
        self.handled = [0] * len(CODE_NAMES)

    def handle(self, code: GrpcCode | int) -> None:
        self.handled[int(code)] += 1


def _kind(client_streaming: bool, server_streaming: bool) -> str:
    if client_streaming:
        return "bidi_stream" if server_streaming else "client_stream"
    return "server_stream" if server_streaming else "unary"


class RpcMetrics(Collector):
    """Every method's :class:`Rpc`, by full method name (``/etcdserverpb.KV/Range``)."""

    def __init__(self, files: tuple[FileDescriptor, ...] = ()) -> None:
        self.rpcs: dict[str, Rpc] = {}
        for f in files:
            for service in f.services_by_name.values():
                for m in service.methods:
                    kind = _kind(m.client_streaming, m.server_streaming)
                    self.rpcs[f"/{service.full_name}/{m.name}"] = Rpc(service.full_name, m.name, kind)

    def rpc(self, full_method: str) -> Rpc:
        """The counts of ``/service/Method`` (a method not known at start: counted as unary)."""
        rpc = self.rpcs.get(full_method)
        if rpc is None:
            service, _, method = full_method.strip("/").partition("/")
            rpc = self.rpcs[full_method] = Rpc(service, method, "unary")
        return rpc

    def collect(self) -> Iterator[Metric]:
        started = CounterMetricFamily(
            "grpc_server_started_total", "Total number of RPCs started on the server.", labels=_LABELS
        )
        handled = CounterMetricFamily(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            labels=(*_LABELS, "grpc_code"),
        )
        received = CounterMetricFamily(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            labels=_LABELS,
        )
        sent = CounterMetricFamily(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            labels=_LABELS,
        )
        for rpc in self.rpcs.values():
            labels = [rpc.type, rpc.service, rpc.method]
            started.add_metric(labels, rpc.started)
            received.add_metric(labels, rpc.received)
            sent.add_metric(labels, rpc.sent)
            for name, count in zip(CODE_NAMES, rpc.handled, strict=True):
                handled.add_metric([*labels, name], count)
        yield from (handled, received, sent, started)


#: The member's counts (one member per process), exported on every /metrics.
RPC_METRICS: Final = RpcMetrics((rpc_pb2.DESCRIPTOR, v3lock_pb2.DESCRIPTOR, v3election_pb2.DESCRIPTOR))
REGISTRY.register(RPC_METRICS)
