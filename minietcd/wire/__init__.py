"""Conversions between minietcd's domain types and their protobuf wire forms.

``raft_codec``: ``minietcd.raft.types`` dataclasses <-> ``minietcd.raftpb`` messages (the
peer protocol, proto/minietcd/api/raftpb/raft.proto).
"""
