"""The member IDs a lab cluster's members will have, computed before any of them starts.

The lab drives members from outside (processes, containers), as an operator with the real etcd
would, so it keeps its own copy of etcd's rule rather than reaching into the server
(etcdserver/api/membership/member.go ``NewMember``): SHA-1 over the peer URLs sorted and
concatenated, then the cluster token; the first 8 bytes of the digest, big-endian. A test keeps
this copy equal to the server's (tests/lab/test_ids.py), and compose clusters check it against
what the members report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def member_id(peer_urls: Iterable[str], token: str) -> int:
    """The ID etcd gives a bootstrap member with these peer URLs in a cluster with this token."""
    data = "".join(sorted(peer_urls)) + token
    return int.from_bytes(hashlib.sha1(data.encode()).digest()[:8], "big")
