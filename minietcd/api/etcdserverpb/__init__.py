"""Generated from proto/minietcd/api/etcdserverpb/. Do not edit: run `python scripts/gen_proto.py`."""
