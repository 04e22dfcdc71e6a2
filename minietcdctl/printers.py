"""etcdctl's output formats (``-w simple|json|fields|table|protobuf``), byte for byte.

Each method mirrors etcdctl 3.4's printer of the same name (ctlv3/command/printer*.go),
including which formats a command does not support ("Error: table not supported as output
format", exit code 4, printed after the request was made, as etcdctl does).
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.golang import humanize_bytes, quote
from minietcdctl.flags import Exit, ExitError
from minietcdctl.gofmt import go_string, json_dumps, pb_to_go, render_table

EXIT_BAD_FEATURE = 4
FORMATS = ("simple", "fields", "json", "protobuf", "table")
_EVENT_TYPES = {0: "PUT", 1: "DELETE"}
_ALARM_TYPES = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}


def write(text: str) -> None:
    """Write to stdout; text may carry raw bytes as surrogate escapes."""
    try:
        sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
        sys.stdout.flush()
    except BrokenPipeError:
        die_of_sigpipe()


def die_of_sigpipe() -> None:
    """stdout was closed (``| head``): end as etcdctl does, killed by SIGPIPE. (SIGPIPE is not
    reset globally: gRPC's own sockets must keep ignoring it.)"""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
    raise Exit(1)


def panic(message: str = "runtime error: invalid memory address or nil pointer dereference") -> None:
    """What etcdctl does where its printer dereferences nil: a Go panic, exit code 2."""
    sys.stdout.flush()
    sys.stderr.write(f"panic: {message}\n[signal SIGSEGV: segmentation violation]\n")
    raise Exit(2)


@dataclass
class EpHealth:
    ep: str
    health: bool
    took: str
    error: str = ""


@dataclass
class EpStatus:
    ep: str
    resp: rpc_pb2.StatusResponse


@dataclass
class EpHashKV:
    ep: str
    resp: rpc_pb2.HashKVResponse


def _hex(b: bytes) -> str:
    return "".join(f"\\x{x:02x}" for x in b)


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def _header_go(h: rpc_pb2.ResponseHeader | None) -> dict[str, Any]:
    return pb_to_go(h) if h is not None else {}


class Printer:
    def __init__(self, fmt: str, is_hex: bool = False) -> None:
        self.fmt = fmt
        self.is_hex = is_hex
        self.value_only = False

    # ------------------------------------------------------------------------- helpers

    def unsupported(self) -> None:
        raise ExitError(EXIT_BAD_FEATURE, f"{self.fmt} not supported as output format")

    def _pb(self, msg: Any) -> None:
        """printerRPC: json (Go's encoding of the message) or protobuf (its wire bytes)."""
        if self.fmt == "json":
            write(json_dumps(pb_to_go(msg)) + "\n")
        elif self.fmt == "protobuf":
            sys.stdout.buffer.write(msg.SerializeToString())
            sys.stdout.flush()
        else:
            self.unsupported()

    def _not_marshalable(self, type_name: str) -> None:
        raise ExitError(EXIT_BAD_FEATURE, f"marshal unsupported for type {type_name}")

    def kv(self, kv: Any) -> str:
        k, v = bytes(kv.key), bytes(kv.value)
        ks, vs = (_hex(k), _hex(v)) if self.is_hex else (go_string(k), go_string(v))
        return (vs + "\n") if self.value_only else f"{ks}\n{vs}\n"

    @staticmethod
    def _fields_kv(prefix: str, kv: Any) -> str:
        return (
            f'"{prefix}Key" : {quote(bytes(kv.key))}\n'
            f'"{prefix}CreateRevision" : {kv.create_revision}\n'
            f'"{prefix}ModRevision" : {kv.mod_revision}\n'
            f'"{prefix}Version" : {kv.version}\n'
            f'"{prefix}Value" : {quote(bytes(kv.value))}\n'
            f'"{prefix}Lease" : {kv.lease}\n'
        )

    @staticmethod
    def _fields_hdr(h: Any) -> str:
        return f'"ClusterID" : {h.cluster_id}\n"MemberID" : {h.member_id}\n"Revision" : {h.revision}\n"RaftTerm" : {h.raft_term}\n'  # noqa: E501

    # ------------------------------------------------------------------------------ KV

    def _simple_del(self, r: rpc_pb2.DeleteRangeResponse) -> str:
        return f"{r.deleted}\n" + "".join(self.kv(kv) for kv in r.prev_kvs)

    def _simple_get(self, r: rpc_pb2.RangeResponse) -> str:
        return "".join(self.kv(kv) for kv in r.kvs)

    def _simple_put(self, r: rpc_pb2.PutResponse) -> str:
        return "OK\n" + (self.kv(r.prev_kv) if r.HasField("prev_kv") else "")

    def _fields_del(self, r: rpc_pb2.DeleteRangeResponse) -> str:
        return (
            self._fields_hdr(r.header)
            + f'"Deleted" : {r.deleted}\n'
            + "".join(self._fields_kv("Prev", kv) for kv in r.prev_kvs)
        )

    def _fields_get(self, r: rpc_pb2.RangeResponse) -> str:
        return (
            self._fields_hdr(r.header)
            + "".join(self._fields_kv("", kv) for kv in r.kvs)
            + f'"More" : {"true" if r.more else "false"}\n"Count" : {r.count}\n'
        )

    def _fields_put(self, r: rpc_pb2.PutResponse) -> str:
        return self._fields_hdr(r.header) + (
            self._fields_kv("Prev", r.prev_kv) if r.HasField("prev_kv") else ""
        )

    def get(self, r: rpc_pb2.RangeResponse) -> None:
        if self.fmt == "simple":
            write(self._simple_get(r))
        elif self.fmt == "fields":
            write(self._fields_get(r))
        else:
            self._pb(r)

    def put(self, r: rpc_pb2.PutResponse) -> None:
        if self.fmt == "simple":
            write(self._simple_put(r))
        elif self.fmt == "fields":
            write(self._fields_put(r))
        else:
            self._pb(r)

    def delete(self, r: rpc_pb2.DeleteRangeResponse) -> None:
        if self.fmt == "simple":
            write(self._simple_del(r))
        elif self.fmt == "fields":
            write(self._fields_del(r))
        else:
            self._pb(r)

    def txn(self, r: rpc_pb2.TxnResponse) -> None:
        if self.fmt == "simple":
            parts = ["SUCCESS\n" if r.succeeded else "FAILURE\n"]
            for op in r.responses:
                parts.append("\n")
                kind = op.WhichOneof("response")
                if kind == "response_delete_range":
                    parts.append(self._simple_del(op.response_delete_range))
                elif kind == "response_put":
                    parts.append(self._simple_put(op.response_put))
                elif kind == "response_range":
                    parts.append(self._simple_get(op.response_range))
                else:
                    parts.append(f"unexpected response {op}\n")
            write("".join(parts))
        elif self.fmt == "fields":
            parts = [self._fields_hdr(r.header), f'"Succeeded" : {"true" if r.succeeded else "false"}\n']
            for op in r.responses:
                kind = op.WhichOneof("response")
                if kind == "response_delete_range":
                    parts.append(self._fields_del(op.response_delete_range))
                elif kind == "response_put":
                    parts.append(self._fields_put(op.response_put))
                elif kind == "response_range":
                    parts.append(self._fields_get(op.response_range))
                else:
                    parts.append(f'"Unknown" : {quote(str(op))}\n')
            write("".join(parts))
        else:
            self._pb(r)

    def watch(self, r: rpc_pb2.WatchResponse) -> None:
        if self.fmt == "simple":
            parts = []
            for ev in r.events:
                parts.append(_EVENT_TYPES.get(ev.type, str(ev.type)) + "\n")
                if ev.HasField("prev_kv"):
                    parts.append(self.kv(ev.prev_kv))
                parts.append(self.kv(ev.kv))
            write("".join(parts))
        elif self.fmt == "fields":
            parts = [self._fields_hdr(r.header)]
            for ev in r.events:
                parts.append(f'"Type" : {_EVENT_TYPES.get(ev.type, str(ev.type))}\n')
                if ev.HasField("prev_kv"):
                    parts.append(self._fields_kv("Prev", ev.prev_kv))
                parts.append(self._fields_kv("", ev.kv))
            write("".join(parts))
        elif self.fmt == "json":
            doc = {
                "Header": _header_go(r.header),
                "Events": [pb_to_go(ev) for ev in r.events],
                "CompactRevision": r.compact_revision,
                "Canceled": r.canceled,
                "Created": r.created,
            }
            write(json_dumps(doc) + "\n")
        elif self.fmt == "protobuf":
            msg = rpc_pb2.WatchResponse(
                header=r.header, events=r.events, compact_revision=r.compact_revision,
                canceled=r.canceled, created=r.created,
            )  # fmt: skip
            self._pb(msg)
        else:
            self.unsupported()

    # --------------------------------------------------------------------------- leases

    @staticmethod
    def _embedded_header_pb(r: Any) -> None:
        """clientv3's lease results embed *pb.ResponseHeader, whose Marshal they inherit: the
        protobuf printer writes just the header."""
        if r.HasField("header"):
            sys.stdout.buffer.write(r.header.SerializeToString())
            sys.stdout.flush()
        else:
            panic()

    @staticmethod
    def _embedded_header(r: Any) -> dict[str, Any]:
        return pb_to_go(r.header) if r.HasField("header") else {}

    def grant(self, r: rpc_pb2.LeaseGrantResponse) -> None:
        if self.fmt == "simple":
            write(f"lease {r.ID & (2**64 - 1):016x} granted with TTL({r.TTL}s)\n")
        elif self.fmt == "fields":
            write(self._fields_hdr(r.header) + f'"ID" : {r.ID}\n"TTL" : {r.TTL}\n')
        elif self.fmt == "json":
            write(json_dumps({**self._embedded_header(r), "ID": r.ID, "TTL": r.TTL, "Error": r.error}) + "\n")
        elif self.fmt == "protobuf":
            self._embedded_header_pb(r)
        else:
            self.unsupported()

    def revoke(self, lease_id: int, r: rpc_pb2.LeaseRevokeResponse) -> None:
        if self.fmt == "simple":
            write(f"lease {lease_id & (2**64 - 1):016x} revoked\n")
        elif self.fmt == "fields":
            write(self._fields_hdr(r.header))
        elif self.fmt == "json":
            self._pb(r)
        elif self.fmt == "protobuf":
            self._not_marshalable("clientv3.LeaseRevokeResponse")
        else:
            self.unsupported()

    def keep_alive(self, r: rpc_pb2.LeaseKeepAliveResponse) -> None:
        if self.fmt == "simple":
            write(f"lease {r.ID & (2**64 - 1):016x} keepalived with TTL({r.TTL})\n")
        elif self.fmt == "fields":
            write(self._fields_hdr(r.header) + f'"ID" : {r.ID}\n"TTL" : {r.TTL}\n')
        elif self.fmt == "json":
            write(json_dumps({**self._embedded_header(r), "ID": r.ID, "TTL": r.TTL}) + "\n")
        elif self.fmt == "protobuf":
            self._embedded_header_pb(r)
        else:
            self.unsupported()

    def time_to_live(self, r: rpc_pb2.LeaseTimeToLiveResponse, keys: bool) -> None:
        if self.fmt == "simple":
            lid = r.ID & (2**64 - 1)
            if r.grantedTTL == 0 and r.TTL == -1:
                write(f"lease {lid:016x} already expired\n")
                return
            txt = f"lease {lid:016x} granted with TTL({r.grantedTTL}s), remaining({r.TTL}s)"
            if keys:
                txt += f", attached keys({_go_list([go_string(bytes(k)) for k in r.keys])})"
            write(txt + "\n")
        elif self.fmt == "fields":
            write(
                self._fields_hdr(r.header)
                + f'"ID" : {r.ID}\n"TTL" : {r.TTL}\n"GrantedTTL" : {r.grantedTTL}\n'
                + "".join(f'"Key" : {quote(bytes(k))}\n' for k in r.keys)
            )
        elif self.fmt == "json":
            doc = {
                **self._embedded_header(r),
                "id": r.ID,
                "ttl": r.TTL,
                "granted-ttl": r.grantedTTL,
                "keys": [bytes(k) for k in r.keys] if len(r.keys) else None,
            }
            write(json_dumps(doc) + "\n")
        elif self.fmt == "protobuf":
            self._embedded_header_pb(r)
        else:
            self.unsupported()

    def leases(self, r: rpc_pb2.LeaseLeasesResponse) -> None:
        if self.fmt == "simple":
            write(
                f"found {len(r.leases)} leases\n" + "".join(f"{x.ID & (2**64 - 1):016x}\n" for x in r.leases)
            )
        elif self.fmt == "fields":
            write(self._fields_hdr(r.header) + "".join(f'"ID" : {x.ID}\n' for x in r.leases))
        elif self.fmt == "json":
            write(json_dumps({**self._embedded_header(r), "leases": [{"id": x.ID} for x in r.leases]}) + "\n")
        elif self.fmt == "protobuf":
            self._embedded_header_pb(r)
        else:
            self.unsupported()

    # -------------------------------------------------------------------------- members

    @staticmethod
    def member_rows(r: Any) -> list[list[str]]:
        return [
            [
                f"{m.ID:x}",
                "started" if m.name else "unstarted",
                m.name,
                ",".join(m.peerURLs),
                ",".join(m.clientURLs),
                "true" if m.isLearner else "false",
            ]
            for m in r.members
        ]

    def member_add(self, r: rpc_pb2.MemberAddResponse) -> None:
        if self.fmt == "simple":
            write(f"Member {r.member.ID:16x} added to cluster {r.header.cluster_id:16x}\n")
        elif self.fmt in ("json", "protobuf"):
            self._pb(r)
        else:
            self.unsupported()

    def _member_change(self, verb: str, member_id: int, r: Any) -> None:
        if self.fmt == "simple":
            write(f"Member {member_id:16x} {verb} cluster {r.header.cluster_id:16x}\n")
        elif self.fmt in ("json", "protobuf"):
            self._pb(r)
        else:
            self.unsupported()

    def member_remove(self, member_id: int, r: rpc_pb2.MemberRemoveResponse) -> None:
        self._member_change("removed from", member_id, r)

    def member_update(self, member_id: int, r: rpc_pb2.MemberUpdateResponse) -> None:
        self._member_change("updated in", member_id, r)

    def member_promote(self, member_id: int, r: rpc_pb2.MemberPromoteResponse) -> None:
        if self.fmt == "simple":
            write(f"Member {member_id:16x} promoted in cluster {r.header.cluster_id:16x}\n")
        else:
            panic()  # etcdctl 3.4's non-simple printers have no MemberPromote

    def member_list(self, r: rpc_pb2.MemberListResponse) -> None:
        rows = self.member_rows(r)
        if self.fmt == "simple":
            write("".join(", ".join(row) + "\n" for row in rows))
        elif self.fmt == "fields":
            parts = [self._fields_hdr(r.header)]
            for m in r.members:
                parts.append(f'"ID" : {m.ID}\n"Name" : {quote(m.name)}\n')
                parts.extend(f'"PeerURL" : {quote(u)}\n' for u in m.peerURLs)
                parts.extend(f'"ClientURL" : {quote(u)}\n' for u in m.clientURLs)
                parts.append(f'"IsLearner" : {"true" if m.isLearner else "false"}\n\n')
            write("".join(parts))
        elif self.fmt == "table":
            write(render_table(["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"], rows))
        else:
            self._pb(r)

    # ------------------------------------------------------------------------ endpoints

    def endpoint_health(self, hs: list[EpHealth]) -> None:
        if self.fmt == "simple":
            for h in hs:
                if not h.error:
                    sys.stderr.write(f"{h.ep} is healthy: successfully committed proposal: took = {h.took}\n")
                else:
                    sys.stderr.write(f"{h.ep} is unhealthy: failed to commit proposal: {h.error}\n")
            sys.stderr.flush()
        elif self.fmt == "fields":
            write(
                "".join(
                    f'"Endpoint" : {quote(h.ep)}\n"Health" : {"true" if h.health else "false"}\n'
                    f'"Took" : {h.took}\n"Error" : {h.error}\n\n'
                    for h in hs
                )
            )
        elif self.fmt == "json":
            docs = []
            for h in hs:
                d: dict[str, Any] = {"endpoint": h.ep, "health": h.health, "took": h.took}
                if h.error:
                    d["error"] = h.error
                docs.append(d)
            write(json_dumps(docs) + "\n")
        elif self.fmt == "table":
            rows = [[h.ep, "true" if h.health else "false", h.took, h.error] for h in hs]
            write(render_table(["endpoint", "health", "took", "error"], rows))
        else:
            self.unsupported()

    @staticmethod
    def status_rows(sl: list[EpStatus]) -> list[list[str]]:
        return [
            [
                s.ep,
                f"{s.resp.header.member_id:x}",
                s.resp.version,
                humanize_bytes(s.resp.dbSize),
                "true" if s.resp.leader == s.resp.header.member_id else "false",
                "true" if s.resp.isLearner else "false",
                str(s.resp.raftTerm),
                str(s.resp.raftIndex),
                str(s.resp.raftAppliedIndex),
                ", ".join(s.resp.errors),
            ]
            for s in sl
        ]

    def endpoint_status(self, sl: list[EpStatus]) -> None:
        if self.fmt == "simple":
            write("".join(", ".join(row) + "\n" for row in self.status_rows(sl)))
        elif self.fmt == "fields":
            parts = []
            for s in sl:
                r = s.resp
                parts.append(
                    self._fields_hdr(r.header)
                    + f'"Version" : {quote(r.version)}\n"DBSize" : {r.dbSize}\n"Leader" : {r.leader}\n'
                    f'"IsLearner" : {"true" if r.isLearner else "false"}\n"RaftIndex" : {r.raftIndex}\n'
                    f'"RaftTerm" : {r.raftTerm}\n"RaftAppliedIndex" : {r.raftAppliedIndex}\n'
                    f'"Errors" : {_go_list(list(r.errors))}\n"Endpoint" : {quote(s.ep)}\n\n'
                )
            write("".join(parts))
        elif self.fmt == "json":
            write(json_dumps([{"Endpoint": s.ep, "Status": pb_to_go(s.resp)} for s in sl]) + "\n")
        elif self.fmt == "table":
            header = ["endpoint", "ID", "version", "db size", "is leader", "is learner", "raft term",
                      "raft index", "raft applied index", "errors"]  # fmt: skip
            write(render_table(header, self.status_rows(sl)))
        else:
            self.unsupported()

    def endpoint_hashkv(self, hl: list[EpHashKV]) -> None:
        rows = [[h.ep, str(h.resp.hash)] for h in hl]
        if self.fmt == "simple":
            write("".join(", ".join(row) + "\n" for row in rows))
        elif self.fmt == "fields":
            write(
                "".join(
                    self._fields_hdr(h.resp.header)
                    + f'"Endpoint" : {quote(h.ep)}\n"Hash" : {h.resp.hash}\n\n'
                    for h in hl
                )
            )
        elif self.fmt == "json":
            write(json_dumps([{"Endpoint": h.ep, "HashKV": pb_to_go(h.resp)} for h in hl]) + "\n")
        elif self.fmt == "table":
            write(render_table(["endpoint", "hash"], rows))
        else:
            self.unsupported()

    def move_leader(self, leader: int, target: int, r: rpc_pb2.MoveLeaderResponse) -> None:
        if self.fmt == "simple":
            write(f"Leadership transferred from {leader:x} to {target:x}\n")
        elif self.fmt in ("json", "protobuf"):
            self._pb(r)
        else:
            self.unsupported()

    # --------------------------------------------------------------------------- alarms

    def alarm(self, r: rpc_pb2.AlarmResponse) -> None:
        if self.fmt == "simple":
            parts = []
            for a in r.alarms:
                text = ""
                if a.memberID:
                    text += f"memberID:{a.memberID} "
                if a.alarm:
                    text += f"alarm:{_ALARM_TYPES.get(a.alarm, str(a.alarm))} "
                parts.append(text + "\n")
            write("".join(parts))
        elif self.fmt == "fields":
            if not r.HasField("header"):
                panic()
            parts = [self._fields_hdr(r.header)]
            for a in r.alarms:
                parts.append(
                    f'"MemberID" : {a.memberID}\n"AlarmType" : {_ALARM_TYPES.get(a.alarm, str(a.alarm))}\n\n'
                )
            write("".join(parts))
        else:
            self._pb(r)
