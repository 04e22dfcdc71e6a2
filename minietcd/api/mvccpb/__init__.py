"""Generated from proto/minietcd/api/mvccpb/. Do not edit: run `python scripts/gen_proto.py`."""
