"""Member and cluster IDs, derived exactly as etcd 3.4 derives them.

Both are deterministic so that every member of a new cluster computes the same IDs from the same
``--initial-cluster`` and ``--initial-cluster-token`` without talking to the others
(etcdserver/api/membership/member.go ``NewMember`` and cluster.go ``genID``):

* member ID: SHA-1 over the member's peer URLs sorted as strings and concatenated, then the
  cluster token, then (only for members added at runtime) the decimal Unix time; the first
  8 bytes of the digest read big-endian. Runtime adds (``MemberAdd``, v2 and v3 APIs) pass an
  *empty* token, not the cluster's: :func:`added_member_id`.
* cluster ID: SHA-1 over the member IDs sorted numerically, each as 8 bytes big-endian; the
  first 8 bytes of the digest read big-endian.

IDs print as lowercase hex without padding (``types.ID.String``), which is what etcdctl's
table output and etcd's logs show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from minietcd.server.urls import URL

__all__ = ["added_member_id", "cluster_id", "format_id", "member_id", "parse_id"]


def member_id(peer_urls: Iterable[URL | str], token: str, now: int | None = None) -> int:
    """The ID etcd gives a member with these peer URLs in a cluster with this token.

    ``now`` is the Unix time in seconds for members added with ``member add`` (etcd mixes it
    in so that re-adding the same URLs yields a fresh ID; see :func:`added_member_id`);
    bootstrap members pass ``None``.
    """
    data = "".join(sorted(str(u) for u in peer_urls)) + token
    if now is not None:
        data += str(now)
    digest = hashlib.sha1(data.encode()).digest()
    return int.from_bytes(digest[:8], "big")


def added_member_id(peer_urls: Iterable[URL | str], now: int) -> int:
    """The ID etcd's ``MemberAdd`` gives a new member: no token, Unix time ``now`` (seconds)."""
    return member_id(peer_urls, "", now)


def cluster_id(member_ids: Iterable[int]) -> int:
    """The cluster ID etcd derives from the bootstrap members' IDs."""
    data = b"".join(i.to_bytes(8, "big") for i in sorted(member_ids))
    return int.from_bytes(hashlib.sha1(data).digest()[:8], "big")


def format_id(ident: int) -> str:
    """``types.ID.String()``: lowercase hex, no padding, no prefix."""
    return format(ident, "x")


def parse_id(text: str) -> int:
    """Inverse of :func:`format_id` (etcdctl accepts member IDs in hex)."""
    return int(text, 16)
