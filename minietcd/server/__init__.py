"""See README "Architecture"."""

from __future__ import annotations

import os

# gRPC's C core logs at INFO to stderr ("Got goaway", reconnect attempts) in a format of its own;
# a member's log is etcd's capnslog lines. Read when grpc is first imported, which happens in
# this package's modules. GRPC_VERBOSITY=INFO (or DEBUG) shows them again.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

# gRPC core's listeners: iomgr's, not EventEngine's (issue 15). Since grpcio 1.6x an accepted
# connection is an EventEngine endpoint by default: its reads run on EventEngine's poller and
# worker-pool threads, which then queue each completion for grpc.aio's poller thread, one more
# thread hand-off per event than iomgr's endpoints (read by the thread in
# grpc_completion_queue_next itself). Measured on grpcio 1.85.4, 1 member, put1 load, 2 cores,
# A/B alternated: context switches per put 7.6 -> 5.3 (lower in every pair); member CPU per put -14 to
# -22% (medians, n=5-6) while a CI run kept the load average at 4-7, but only -4% (n=6) and
# within noise (n=6, benchmarks/compare.py) at load 1-2. Deadlines, cancellation and the message
# size limit answer as before. Only the default: GRPC_EXPERIMENTS set (even empty) replaces it.
# Read when grpc core initialises (its first use, after this package is imported).
os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_listener")
