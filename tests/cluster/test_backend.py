"""The applied state in the backend, seen from outside: restarts replay only the log tail, a
new member is sent the database, defrag rewrites the file (issue 15)."""

from __future__ import annotations

import json
import re

import pytest

from tests.cluster.conftest import ClusterFactory
from tests.cluster.grpc_kv import KV, wait_until
from tests.cluster.harness import ProcessCluster, minietcd_binary

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RECOVERED = re.compile(
    r"recovered the applied state at index (\d+) \(database at (\d+), (\d+) committed entries replayed\)"
)


def _recoveries(c: ProcessCluster, i: int) -> list[tuple[int, int, int]]:
    text = c.members[i].log_path.read_text(errors="replace")
    return [(int(a), int(b), int(n)) for a, b, n in RECOVERED.findall(text)]


def test_a_restart_replays_only_the_entries_after_the_database(process_cluster: ClusterFactory) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 1).start()
    c.wait_healthy(30)
    kv = KV(c.endpoint(0))
    for i in range(300):
        kv.put(b"k%03d" % i, b"v%d" % i)
    kv.close()

    c.stop(0)  # a clean stop commits the database: nothing to replay
    c.start_member(0)
    c.wait_healthy(30)
    applied, db, replayed = _recoveries(c, 0)[-1]
    assert (db, replayed) == (applied, 0) and applied > 300

    kv = KV(c.endpoint(0))
    for i in range(300, 400):
        kv.put(b"k%03d" % i, b"v%d" % i)
    kv.close()
    c.kill(0)  # kill -9: at most the last batch (100 ms of writes) is missing from the database
    c.start_member(0)
    c.wait_healthy(30)
    applied, db, replayed = _recoveries(c, 0)[-1]
    assert replayed == applied - db and db > 300 and replayed < 100
    kv = KV(c.endpoint(0))
    assert len(kv.prefix(b"k")) == 400
    assert kv.get(b"k399") == b"v399"
    kv.close()


def test_a_new_member_is_sent_the_database_and_hashes_equal(process_cluster: ClusterFactory) -> None:
    # A small --snapshot-count compacts the leader's log, so the new member can only catch up
    # by a snapshot: the leader's database, copied off its loop and streamed.
    c: ProcessCluster = process_cluster(minietcd_binary(), 3, extra_flags=["--snapshot-count", "100"]).start()
    c.wait_healthy(30)
    kvs = [KV(c.endpoint(i)) for i in range(3)]
    for i in range(5300):  # > the 5,000 entries kept behind a snapshot for slow followers
        kvs[i % 3].put(b"s/%05d" % i, b"%d" % i)
    c.etcdctl_ok("compact", str(kvs[0].put(b"s/marker", b"m")))
    new = c.member_add_and_start("n4", timeout=60)
    back = KV(c.endpoint(new))
    wait_until(lambda: len(back.prefix(b"s/", serializable=True)) == 5301, 60, "the new member's keys")
    log = c.members[new].log_path.read_text(errors="replace")
    assert "received snapshot" in log and "applied snapshot" in log
    leader_logs = "".join(m.log_path.read_text(errors="replace") for m in c.members[:3])
    assert re.search(r"sent snapshot \(index \d+\) to peer [0-9a-f]+, \d+ bytes", leader_logs)
    c.wait_converged(30)
    wait_until(lambda: len({KV(c.endpoint(i)).hash_kv() for i in range(4)}) == 1, 30, "equal HashKV")
    for kv in [*kvs, back]:
        kv.close()


def test_defrag_rewrites_the_file_smaller(process_cluster: ClusterFactory) -> None:
    c: ProcessCluster = process_cluster(minietcd_binary(), 1).start()
    c.wait_healthy(30)
    kv = KV(c.endpoint(0))
    big = b"x" * 2048
    for i in range(1000):
        kv.put(b"d/%04d" % i, big)
    kv.close()
    c.etcdctl_ok("del", "d/", "--prefix")
    c.etcdctl_ok("compact", str(KV(c.endpoint(0)).put(b"other", b"1")))

    def db_size() -> tuple[int, int]:
        st = json.loads(c.etcdctl_ok("endpoint", "status", "-w", "json"))[0]["Status"]
        return int(st["dbSize"]), int(st["dbSizeInUse"])

    before, in_use = db_size()
    assert in_use < before  # the compaction freed pages in the file, which does not shrink
    c.etcdctl_ok("defrag")
    after, _ = db_size()
    assert after < before / 2
    assert c.etcdctl_ok("get", "other", "--print-value-only").strip() == "1"
