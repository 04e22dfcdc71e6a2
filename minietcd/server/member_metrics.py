"""etcd's gauges that describe a member, computed when /metrics is scraped: the versions, the
member ID, learner or not, the backend quota, the store's revisions, file descriptors."""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Iterator

from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minietcd import ETCD_API_VERSION
from minietcd.server.etcd_server import EtcdServer

log = logging.getLogger("minietcd.server")


class MemberMetrics(Collector):
    """etcd's gauges that describe the member, computed when scraped (etcdserver/metrics.go,
    mvcc/metrics.go, pkg/osutil): versions, ID, learner, quota, revisions, file descriptors."""

    def __init__(self) -> None:
        self.server: EtcdServer | None = None

    def collect(self) -> Iterator[Metric]:
        s = self.server
        if s is None:
            return
        try:
            metrics = list(self._metrics(s))
        except Exception:  # a scrape never fails for one family; say why in the log
            log.warning("metrics: cannot compute the member's gauges", exc_info=True)
            return
        yield from metrics

    def _metrics(self, s: EtcdServer) -> Iterator[Metric]:
        yield _info(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            "server_version",
            ETCD_API_VERSION,
        )
        cluster = s.sm.membership.cluster_version
        if cluster:  # etcd's label is major.minor ("3.4")
            yield _info(
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                "cluster_version",
                ".".join(cluster.split(".")[:2]),
            )
        yield _info(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            "server_id",
            f"{s.member_id:x}",
        )
        yield GaugeMetricFamily(
            "etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            value=int(s.is_learner()),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.",
            value=s.quota_bytes,
        )  # fmt: skip
        kv = s.sm.kv
        yield GaugeMetricFamily(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
            value=kv.current_revision,
        )
        yield GaugeMetricFamily(
            "etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.",
            value=max(0, kv.compact_revision),
        )  # fmt: skip
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        yield GaugeMetricFamily("os_fd_limit", "The file descriptor limit.", value=limit)
        yield GaugeMetricFamily(
            "os_fd_used", "The number of used file descriptors.", value=len(os.listdir("/proc/self/fd"))
        )


def _info(name: str, doc: str, label: str, value: str) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=[label])
    g.add_metric([value], 1)
    return g


#: The member whose gauges /metrics shows (set when its HTTP side starts).
MEMBER_METRICS = MemberMetrics()
REGISTRY.register(MEMBER_METRICS)
