"""minietcd: a small etcd-compatible key-value store replicated by Raft.

The package is layered the way the design notes draw it (see README "Architecture"):

- ``minietcd.raft``: the pure, deterministic Raft core (no I/O, no clock).
- ``minietcd.storage``: WAL and snapshot files, and a disk-backed Raft log.
- ``minietcd.mvcc``: the multi-version key-value store and its watch hub.
- ``minietcd.lease``: leases and their expiry.
- ``minietcd.server``: the process that glues the above to gRPC.
- ``minietcd.client``: an asyncio client library.
- ``minietcd.lab``: run, break and measure real clusters.
"""

from __future__ import annotations

__version__ = "0.1.0"
# The etcd version we speak and report (etcdctl checks it for feature gates).
ETCD_API_VERSION = "3.4.23"
