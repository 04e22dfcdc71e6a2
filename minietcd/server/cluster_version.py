"""The cluster version's log lines, as etcd 3.4 prints them on every member.

Scripts and test harnesses wait for these lines on each member (etcd's own e2e tests wait for
``enabled capabilities for version`` before they use a member), so they are printed where etcd
prints them, with etcd's package prefixes and capnslog levels:

* the leader, before it proposes the version (``etcdserver/server.go`` updateClusterVersion)::

      I | etcdserver: setting up the initial cluster version to 3.4

* every member, leader and followers, when it *applies* the version entry (the v2 PUT of
  ``/0/version``: ``membership.RaftCluster.SetVersion`` then ``api.UpdateCapability``)::

      N | etcdserver/membership: set the initial cluster version to 3.4
      I | etcdserver/api: enabled capabilities for version 3.4

  (``updated the cluster version from 3.4 to 3.5`` if a version was already set);

* a member that starts, or installs a snapshot, with the version already in its state
  (``RaftCluster.Recover``)::

      I | etcdserver/api: enabled capabilities for version 3.4
      I | etcdserver/membership: set the cluster version to 3.4 from store

The restart case, compared with etcd 3.4.23: etcd replays its log from its last Raft snapshot
through the v2 store, so a member restarted before its first snapshot (every 100,000 entries
by default) applies the version entry again and prints the two "applied" lines; after a
snapshot it prints the two "from store" lines. minietcd restarts from its database, which is
etcd's snapshot case, so it prints the "from store" lines. Both print ``enabled capabilities
for version 3.4``, the line tools wait for.

``enabled capabilities`` is printed only when the capability version rises (etcd keeps it in a
process-wide variable; here each state machine keeps its own, which is the same for a process
that runs one member).
"""

from __future__ import annotations

import logging

from minietcd.server.logsetup import NOTICE

log = logging.getLogger("minietcd.server")


def major_minor(version: str) -> str:
    """etcd's ``version.Cluster``: "3.4.0" -> "3.4"."""
    return ".".join(version.split(".")[:2])


def _key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return ()


class CapabilityLog:
    """Prints the lines above for one state machine; remembers the capability version."""

    __slots__ = ("_enabled",)

    def __init__(self) -> None:
        self._enabled = ""  # the version whose capabilities were announced ("" = none yet)

    def proposing(self, version: str) -> None:
        """The leader is about to propose ``version`` as the first cluster version."""
        log.info("etcdserver: setting up the initial cluster version to %s", major_minor(version))

    def applied(self, old: str, new: str) -> None:
        """The version entry was applied: the cluster version went from ``old`` ("" = none)."""
        if old:
            log.log(
                NOTICE,
                "etcdserver/membership: updated the cluster version from %s to %s",
                major_minor(old),
                major_minor(new),
            )
        else:
            log.log(NOTICE, "etcdserver/membership: set the initial cluster version to %s", major_minor(new))
        self._enable(new)

    def recovered(self, version: str) -> None:
        """State holding ``version`` ("" = none) was loaded: a restart or an installed snapshot."""
        if not version:
            return  # etcd: "if recovered but version was never set by cluster"
        self._enable(version)
        log.info("etcdserver/membership: set the cluster version to %s from store", major_minor(version))

    def _enable(self, version: str) -> None:
        if self._enabled and _key(self._enabled) >= _key(version):
            return
        self._enabled = version
        log.info("etcdserver/api: enabled capabilities for version %s", major_minor(version))
