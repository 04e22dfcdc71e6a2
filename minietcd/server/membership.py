"""Cluster membership as the applied state machine sees it (etcd's ``membership.RaftCluster``).

Members enter and leave through committed ConfChange entries whose context carries the member
as JSON (the same fields etcd puts in its ConfChange context). A member's name and client URLs
are published later through the log, as etcd 3.4 does with a v2 PUT of
``/0/members/<id>/attributes``, so every member agrees on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from minietcd.errors import MemberIDRemovedError


@dataclass(slots=True)
class Member:
    id: int
    name: str = ""  # empty until the member publishes its attributes ("unstarted")
    peer_urls: list[str] = field(default_factory=list)
    client_urls: list[str] = field(default_factory=list)
    is_learner: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "peerURLs": list(self.peer_urls),
            "clientURLs": list(self.client_urls),
            "isLearner": self.is_learner,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Member:  # JSON as json.loads returns it
        return cls(
            id=int(d["id"]),
            name=str(d.get("name", "")),
            peer_urls=[str(u) for u in d.get("peerURLs", [])],
            client_urls=[str(u) for u in d.get("clientURLs", [])],
            is_learner=bool(d.get("isLearner", False)),
        )


def encode_conf_context(member: Member, request_id: int) -> bytes:
    """The ConfChange context: the member, and the id of the request waiting for it."""
    return json.dumps({"member": member.to_json(), "request_id": request_id}, sort_keys=True).encode()


def decode_conf_context(data: bytes) -> tuple[Member | None, int]:
    if not data:
        return None, 0
    d = json.loads(data)
    member = Member.from_json(d["member"]) if d.get("member") else None
    return member, int(d.get("request_id", 0))


class Membership:
    """Members of the cluster, plus the ids removed from it (which may never come back)."""

    __slots__ = ("cluster_id", "cluster_version", "members", "removed")

    def __init__(self, cluster_id: int = 0) -> None:
        self.cluster_id = cluster_id
        self.members: dict[int, Member] = {}
        self.removed: set[int] = set()
        self.cluster_version = ""  # set once the cluster has agreed on it, e.g. "3.4.0"

    def sorted_members(self) -> list[Member]:
        return [self.members[i] for i in sorted(self.members)]

    def voters(self) -> list[int]:
        return sorted(i for i, m in self.members.items() if not m.is_learner)

    def by_peer_url(self, url: str) -> Member | None:
        return next((m for m in self.members.values() if url in m.peer_urls), None)

    # -- changes (called only from apply) --------------------------------------------------------

    def add(self, m: Member) -> None:
        if m.id in self.removed:
            raise MemberIDRemovedError(f"member {m.id:x} was removed")
        if m.id in self.members:
            existing = self.members[m.id]
            if existing.is_learner and not m.is_learner:
                existing.is_learner = False  # promotion
            return
        self.members[m.id] = Member(m.id, m.name, list(m.peer_urls), list(m.client_urls), m.is_learner)

    def remove(self, member_id: int) -> None:
        self.members.pop(member_id, None)
        self.removed.add(member_id)

    def update_peer_urls(self, member_id: int, peer_urls: list[str]) -> None:
        if member_id in self.members:
            self.members[member_id].peer_urls = list(peer_urls)

    def promote(self, member_id: int) -> None:
        if member_id in self.members:
            self.members[member_id].is_learner = False

    def set_attributes(self, member_id: int, name: str, client_urls: list[str]) -> None:
        if member_id in self.members:
            self.members[member_id].name = name
            self.members[member_id].client_urls = list(client_urls)

    # -- snapshot ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        return {
            "cluster_id": self.cluster_id,
            "cluster_version": self.cluster_version,
            "members": [m.to_json() for m in self.sorted_members()],
            "removed": sorted(self.removed),
        }

    def restore(self, d: dict[str, Any]) -> None:  # JSON as json.loads returns it
        self.cluster_id = int(d["cluster_id"])
        self.cluster_version = str(d.get("cluster_version", ""))
        self.members = {m.id: m for m in (Member.from_json(x) for x in d["members"])}
        self.removed = {int(x) for x in d["removed"]}
