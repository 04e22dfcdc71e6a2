"""Generated from proto/minietcd/api/authpb/. Do not edit: run `python scripts/gen_proto.py`."""
