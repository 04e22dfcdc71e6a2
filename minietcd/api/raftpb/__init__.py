"""Generated from proto/minietcd/api/raftpb/. Do not edit: run `python scripts/gen_proto.py`."""
