"""See README "Architecture"."""

import os

# gRPC's C core logs at INFO to stderr ("Got goaway", reconnect attempts) in a format of its own;
# a member's log is etcd's capnslog lines. Read when grpc is first imported, which happens in
# this package's modules. GRPC_VERBOSITY=INFO (or DEBUG) shows them again.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
