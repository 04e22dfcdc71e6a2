"""Generated from proto/minietcd/api/v3lockpb/. Do not edit: run `python scripts/gen_proto.py`."""
