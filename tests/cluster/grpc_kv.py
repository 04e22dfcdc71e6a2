"""A few blocking etcd v3 calls over plain gRPC stubs, for tests that write a lot."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from minietcd.api.etcdserverpb import rpc_pb2, rpc_pb2_grpc


class KV:
    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.insecure_channel(endpoint.split("://")[-1])
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def put(self, key: bytes, value: bytes, timeout: float = 5.0) -> int:
        return int(self.kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=timeout).header.revision)

    def get(self, key: bytes, serializable: bool = False, timeout: float = 5.0) -> bytes | None:
        r = self.kv.Range(rpc_pb2.RangeRequest(key=key, serializable=serializable), timeout=timeout)
        return bytes(r.kvs[0].value) if r.kvs else None

    def prefix(self, prefix: bytes, serializable: bool = False, timeout: float = 10.0) -> dict[bytes, bytes]:
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        r = self.kv.Range(
            rpc_pb2.RangeRequest(key=prefix, range_end=end, serializable=serializable), timeout=timeout
        )
        return {bytes(kv.key): bytes(kv.value) for kv in r.kvs}

    def hash_kv(self, timeout: float = 5.0) -> tuple[int, int]:
        r = self.maintenance.HashKV(rpc_pb2.HashKVRequest(revision=0), timeout=timeout)
        return int(r.hash), int(r.header.revision)

    def status(self, timeout: float = 5.0) -> rpc_pb2.StatusResponse:
        resp: rpc_pb2.StatusResponse = self.maintenance.Status(rpc_pb2.StatusRequest(), timeout=timeout)
        return resp


def wait_until(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``pred()`` until it is true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except grpc.RpcError as e:  # a member still starting, or a leader change
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")
