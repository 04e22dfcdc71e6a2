"""See README "Architecture"."""

import os

# gRPC's C core logs at INFO to stderr (every failed connection to a member that is down);
# the lab prints its own one-line messages. GRPC_VERBOSITY=INFO shows gRPC's again.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
