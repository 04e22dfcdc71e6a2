"""The gateway's route table: each etcd 3.4 gateway path -> the application API method that
serves it and the request message its JSON body holds. Data, not code: a new route is one row.

The paths are those of etcd 3.4's generated gateways (``etcdserverpb/gw/rpc.pb.gw.go``,
``v3lockpb/gw``, ``v3electionpb/gw``), with their quirks: the lease calls are also under
``/v3/kv/lease/`` (revoke, timetolive, leases), Lock is ``/v3/lock/lock``, and Hash and HashKV
share ``/v3/maintenance/hash``: grpc-gateway serves the first registered, Hash, so HashKV has no
gateway path in etcd 3.4 (checked against etcd 3.4.23). Every route is a POST. ``/v3beta/`` is
rewritten to ``/v3/`` before routing, as etcd's access controller does; ``/v3alpha/`` is not
served by etcd 3.4 (it answers 404), so not here either.

A row names its facet and method (``("kv", "range")`` is ``api.kv.range``); a row whose facet
the API does not have is not served (the auth rows, until the ``Auth`` facet is there).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import Message

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.api.v3electionpb import v3election_pb2
from minietcd.api.v3lockpb import v3lock_pb2


class Kind(enum.Enum):
    UNARY = "unary"
    #: One request, a stream of responses: ``method(ctx, request)`` is an async generator.
    SERVER_STREAM = "server-stream"
    #: Requests and responses both streamed: ``method(ctx, requests)``.
    BIDI_STREAM = "bidi-stream"


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    facet: str
    method: str
    request: type[Message]
    kind: Kind = Kind.UNARY
    #: The gRPC service and method etcd serves it as (metrics label, UNIMPLEMENTED text).
    grpc_service: str = ""
    grpc_method: str = ""


def _rows(service: str, facet: str, rows: list[tuple[str, str, type[Message], str, Kind]]) -> list[Route]:
    return [Route(path, facet, method, req, kind, service, rpc) for path, method, req, rpc, kind in rows]


U, SS, BI = Kind.UNARY, Kind.SERVER_STREAM, Kind.BIDI_STREAM
pb = rpc_pb2

ROUTES: Final[tuple[Route, ...]] = tuple([
    *_rows("etcdserverpb.KV", "kv", [
        ("/v3/kv/range", "range", pb.RangeRequest, "Range", U),
        ("/v3/kv/put", "put", pb.PutRequest, "Put", U),
        ("/v3/kv/deleterange", "delete_range", pb.DeleteRangeRequest, "DeleteRange", U),
        ("/v3/kv/txn", "txn", pb.TxnRequest, "Txn", U),
        ("/v3/kv/compaction", "compact", pb.CompactionRequest, "Compact", U),
    ]),
    *_rows("etcdserverpb.Watch", "watch", [
        ("/v3/watch", "stream", pb.WatchRequest, "Watch", BI),
    ]),
    *_rows("etcdserverpb.Lease", "lease", [
        ("/v3/lease/grant", "grant", pb.LeaseGrantRequest, "LeaseGrant", U),
        ("/v3/lease/revoke", "revoke", pb.LeaseRevokeRequest, "LeaseRevoke", U),
        ("/v3/kv/lease/revoke", "revoke", pb.LeaseRevokeRequest, "LeaseRevoke", U),
        ("/v3/lease/keepalive", "keep_alive", pb.LeaseKeepAliveRequest, "LeaseKeepAlive", BI),
        ("/v3/lease/timetolive", "time_to_live", pb.LeaseTimeToLiveRequest, "LeaseTimeToLive", U),
        ("/v3/kv/lease/timetolive", "time_to_live", pb.LeaseTimeToLiveRequest, "LeaseTimeToLive", U),
        ("/v3/lease/leases", "leases", pb.LeaseLeasesRequest, "LeaseLeases", U),
        ("/v3/kv/lease/leases", "leases", pb.LeaseLeasesRequest, "LeaseLeases", U),
    ]),
    *_rows("etcdserverpb.Cluster", "cluster", [
        ("/v3/cluster/member/add", "member_add", pb.MemberAddRequest, "MemberAdd", U),
        ("/v3/cluster/member/remove", "member_remove", pb.MemberRemoveRequest, "MemberRemove", U),
        ("/v3/cluster/member/update", "member_update", pb.MemberUpdateRequest, "MemberUpdate", U),
        ("/v3/cluster/member/list", "member_list", pb.MemberListRequest, "MemberList", U),
        ("/v3/cluster/member/promote", "member_promote", pb.MemberPromoteRequest, "MemberPromote", U),
    ]),
    *_rows("etcdserverpb.Maintenance", "maintenance", [
        ("/v3/maintenance/alarm", "alarm", pb.AlarmRequest, "Alarm", U),
        ("/v3/maintenance/status", "status", pb.StatusRequest, "Status", U),
        ("/v3/maintenance/defragment", "defragment", pb.DefragmentRequest, "Defragment", U),
        ("/v3/maintenance/hash", "hash", pb.HashRequest, "Hash", U),
        ("/v3/maintenance/snapshot", "snapshot", pb.SnapshotRequest, "Snapshot", SS),
        ("/v3/maintenance/transfer-leadership", "move_leader", pb.MoveLeaderRequest, "MoveLeader", U),
    ]),
    *_rows("etcdserverpb.Auth", "auth", [
        ("/v3/auth/enable", "auth_enable", pb.AuthEnableRequest, "AuthEnable", U),
        ("/v3/auth/disable", "auth_disable", pb.AuthDisableRequest, "AuthDisable", U),
        ("/v3/auth/authenticate", "authenticate", pb.AuthenticateRequest, "Authenticate", U),
        ("/v3/auth/user/add", "user_add", pb.AuthUserAddRequest, "UserAdd", U),
        ("/v3/auth/user/get", "user_get", pb.AuthUserGetRequest, "UserGet", U),
        ("/v3/auth/user/list", "user_list", pb.AuthUserListRequest, "UserList", U),
        ("/v3/auth/user/delete", "user_delete", pb.AuthUserDeleteRequest, "UserDelete", U),
        ("/v3/auth/user/changepw", "user_change_password", pb.AuthUserChangePasswordRequest,
         "UserChangePassword", U),
        ("/v3/auth/user/grant", "user_grant_role", pb.AuthUserGrantRoleRequest, "UserGrantRole", U),
        ("/v3/auth/user/revoke", "user_revoke_role", pb.AuthUserRevokeRoleRequest, "UserRevokeRole", U),
        ("/v3/auth/role/add", "role_add", pb.AuthRoleAddRequest, "RoleAdd", U),
        ("/v3/auth/role/get", "role_get", pb.AuthRoleGetRequest, "RoleGet", U),
        ("/v3/auth/role/list", "role_list", pb.AuthRoleListRequest, "RoleList", U),
        ("/v3/auth/role/delete", "role_delete", pb.AuthRoleDeleteRequest, "RoleDelete", U),
        ("/v3/auth/role/grant", "role_grant_permission", pb.AuthRoleGrantPermissionRequest,
         "RoleGrantPermission", U),
        ("/v3/auth/role/revoke", "role_revoke_permission", pb.AuthRoleRevokePermissionRequest,
         "RoleRevokePermission", U),
    ]),
    *_rows("v3lockpb.Lock", "lock", [
        ("/v3/lock/lock", "lock", v3lock_pb2.LockRequest, "Lock", U),
        ("/v3/lock/unlock", "unlock", v3lock_pb2.UnlockRequest, "Unlock", U),
    ]),
    *_rows("v3electionpb.Election", "election", [
        ("/v3/election/campaign", "campaign", v3election_pb2.CampaignRequest, "Campaign", U),
        ("/v3/election/proclaim", "proclaim", v3election_pb2.ProclaimRequest, "Proclaim", U),
        ("/v3/election/leader", "leader", v3election_pb2.LeaderRequest, "Leader", U),
        ("/v3/election/observe", "observe", v3election_pb2.LeaderRequest, "Observe", SS),
        ("/v3/election/resign", "resign", v3election_pb2.ResignRequest, "Resign", U),
    ]),
])  # fmt: skip

BY_PATH: Final[dict[str, Route]] = {r.path: r for r in ROUTES}
assert len(BY_PATH) == len(ROUTES), "a path is routed twice"
