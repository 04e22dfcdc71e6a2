"""Generated from proto/minietcd/api/v3electionpb/. Do not edit: run `python scripts/gen_proto.py`."""
