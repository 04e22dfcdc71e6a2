"""Generated protobuf and gRPC modules. Do not edit: run `python scripts/gen_proto.py`.

Sources live in proto/minietcd/api/. The etcd v3 API keeps etcd's proto packages
(etcdserverpb, mvccpb, authpb, v3lockpb, v3electionpb), so these modules speak etcd's wire
format; raftpb is minietcd's own peer protocol.
"""
