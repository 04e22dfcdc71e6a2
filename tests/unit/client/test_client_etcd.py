"""minietcd.client against real etcd 3.4: KV, txn, watch, leases, lock, election, maintenance,
failover of reads, a watch that survives its member's death, and unknown write outcomes.

The same tests are meant to pass against minietcd once its server is complete.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from minietcd.client import (
    Client,
    CompactedRevisionError,
    Compare,
    DeadlineExceededError,
    Election,
    ElectionNoLeaderError,
    EndpointsUnavailableError,
    EtcdServerError,
    EventType,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseNotFoundError,
    Lock,
    Op,
    OutcomeUnknownError,
    Session,
    SessionExpiredError,
    WatchCompactedError,
)
from minietcd.errors import AuthFailedError, UserEmptyError
from tests.cluster.harness import ClientTLS, ProcessCluster, client_test_cluster, make_test_certs

pytestmark = pytest.mark.compat


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}/"


async def poll(
    predicate: Callable[[], Awaitable[object]], timeout: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------- KV


async def test_put_get_delete_and_range_options(etcd1: ProcessCluster, prefix: str) -> None:
    async with Client(etcd1.endpoints) as c:
        first = await c.put(prefix + "a", "1")
        await c.put(prefix + "b", "2")
        await c.put(prefix + "c", "3")
        again = await c.put(prefix + "a", "10", prev_kv=True)
        assert again.prev_kv is not None and again.prev_kv.value == b"1"

        one = await c.get(prefix + "a")
        assert one.kvs[0].value == b"10" and one.kvs[0].version == 2
        assert one.kvs[0].create_revision == first.header.revision

        rng = await c.get(prefix + "a", prefix + "c")
        assert [kv.key for kv in rng.kvs] == [(prefix + "a").encode(), (prefix + "b").encode()]

        top = await c.get(prefix, prefix=True, sort_order="descend", sort_target="key", limit=2)
        assert [kv.key_str for kv in top.kvs] == [prefix + "c", prefix + "b"] and top.more and top.count == 3

        keys = await c.get(prefix, prefix=True, keys_only=True)
        assert all(kv.value == b"" for kv in keys.kvs) and len(keys.kvs) == 3
        count = await c.get(prefix, prefix=True, count_only=True)
        assert count.count == 3 and count.kvs == []
        old = await c.get(prefix + "a", revision=first.header.revision)
        assert old.kvs[0].value == b"1"
        ser = await c.get(prefix + "a", serializable=True)
        assert ser.kvs[0].value == b"10"
        by_mod = await c.get(prefix, prefix=True, min_mod_revision=again.header.revision)
        assert [kv.key_str for kv in by_mod.kvs] == [prefix + "a"]

        with pytest.raises(FutureRevisionError):
            await c.get(prefix + "a", revision=one.header.revision + 1000)
        with pytest.raises(KeyNotFoundError):
            await c.put(prefix + "nope", ignore_value=True)

        gone = await c.delete(prefix, prefix=True, prev_kv=True)
        assert gone.deleted == 3 and len(gone.prev_kvs) == 3
        assert (await c.get(prefix, prefix=True)).count == 0


async def test_txn_compare_then_else(etcd1: ProcessCluster, prefix: str) -> None:
    k = prefix + "k"
    async with Client(etcd1.endpoints) as c:
        created = await c.txn().if_(Compare.create(k, "=", 0)).then(Op.put(k, "v1")).else_(Op.get(k)).commit()
        assert created.succeeded
        again = await c.txn().if_(Compare.create(k, "=", 0)).then(Op.put(k, "v2")).else_(Op.get(k)).commit()
        assert not again.succeeded
        got = again.responses[0]
        assert got.kvs[0].value == b"v1"  # type: ignore[union-attr]  # a txn's range response

        cas = await (
            c.txn()
            .if_(Compare.value(k, "=", "v1"), Compare.version(k, ">", 0))
            .then(Op.put(k, "v2", prev_kv=True), Op.delete(prefix + "x"), Op.get(k))
            .commit()
        )
        assert cas.succeeded and len(cas.responses) == 3
        assert cas.responses[2].kvs[0].value == b"v2"  # type: ignore[union-attr]  # a txn's range response
        nested = await c.txn().then(Op.txn([Compare.mod(k, ">", 0)], [Op.get(k)], [])).commit()
        assert nested.responses[0].succeeded  # type: ignore[union-attr]  # a txn's txn response


async def test_compaction(etcd1: ProcessCluster, prefix: str) -> None:
    async with Client(etcd1.endpoints) as c:
        r1 = await c.put(prefix + "c", "1")
        r2 = await c.put(prefix + "c", "2")
        await c.compact(r2.header.revision, physical=True)
        with pytest.raises(CompactedRevisionError) as info:
            await c.get(prefix + "c", revision=r1.header.revision)
        assert str(info.value) == "etcdserver: mvcc: required revision has been compacted"


# ------------------------------------------------------------------------------- watch


async def test_watch_events_prev_kv_filters_and_history(etcd1: ProcessCluster, prefix: str) -> None:
    async with Client(etcd1.endpoints) as c:
        async with c.watch(prefix, prefix=True, prev_kv=True) as w:
            await c.put(prefix + "a", "1")
            await c.put(prefix + "a", "2")
            await c.delete(prefix + "a")
            events = []
            async for batch in w:
                events.extend(batch.events)
                if len(events) >= 3:
                    break
        assert [e.type for e in events] == [EventType.PUT, EventType.PUT, EventType.DELETE]
        assert events[1].prev_kv is not None and events[1].prev_kv.value == b"1"
        assert events[2].kv.mod_revision == events[1].kv.mod_revision + 1

        start = events[0].kv.mod_revision
        async with c.watch(prefix + "a", start_revision=start, filters=["noput"]) as w:
            batch = await w.__anext__()
        assert [e.type for e in batch.events] == [EventType.DELETE]
        assert w.next_revision == events[2].kv.mod_revision + 1


async def test_watch_reports_compaction(etcd1: ProcessCluster, prefix: str) -> None:
    async with Client(etcd1.endpoints) as c:
        r1 = await c.put(prefix + "w", "1")
        r2 = await c.put(prefix + "w", "2")
        await c.compact(r2.header.revision)
        with pytest.raises(WatchCompactedError) as info:
            async for _ in c.watch(prefix + "w", start_revision=r1.header.revision):
                pass
        assert info.value.compact_revision == r2.header.revision
        assert isinstance(info.value, CompactedRevisionError)


# ------------------------------------------------------------------------------ leases


async def test_lease_grant_ttl_keepalive_revoke(etcd1: ProcessCluster, prefix: str) -> None:
    async with Client(etcd1.endpoints) as c:
        lease = await c.grant(30)
        assert lease.ttl == 30
        await c.put(prefix + "l", "v", lease=lease.id)
        ttl = await c.time_to_live(lease.id, keys=True)
        assert ttl.granted_ttl == 30 and 0 < ttl.ttl <= 30 and ttl.keys == [(prefix + "l").encode()]
        assert lease.id in (await c.leases()).leases
        once = await c.keep_alive_once(lease.id)
        assert once.id == lease.id and once.ttl == 30
        await c.revoke(lease.id)
        assert (await c.get(prefix + "l")).count == 0
        assert (await c.time_to_live(lease.id)).ttl == -1
        with pytest.raises(LeaseNotFoundError):
            await c.revoke(lease.id)
        with pytest.raises(LeaseNotFoundError):
            await c.keep_alive_once(lease.id)


async def test_keep_alive_keeps_a_short_lease_and_ends_on_revoke(etcd1: ProcessCluster, prefix: str) -> None:
    async with Client(etcd1.endpoints) as c:
        lease = await c.grant(2)
        await c.put(prefix + "ka", "v", lease=lease.id)
        ka = c.keep_alive(lease.id)
        renewals = 0
        deadline = time.monotonic() + 4.0  # two TTLs: without renewals the key would be gone
        async for _ in ka:
            renewals += 1
            if time.monotonic() > deadline:
                break
        assert renewals >= 3
        assert (await c.get(prefix + "ka")).count == 1
        await c.revoke(lease.id)
        await asyncio.wait_for(ka.wait(), 5)
        assert ka.done
        await ka.aclose()


# ---------------------------------------------------------------------- lock, election


async def test_lock_excludes_and_queues_in_order(etcd1: ProcessCluster, prefix: str) -> None:
    async with Client(etcd1.endpoints) as c, Session(c, ttl=10) as s1, Session(c, ttl=10) as s2:
        order: list[str] = []
        first = Lock(s1, prefix + "lock")
        await first.acquire()
        second = Lock(s2, prefix + "lock")
        waiter = asyncio.create_task(second.acquire())
        await asyncio.sleep(0)  # let it queue

        async def queued() -> bool:
            return (await c.get(prefix + "lock/", prefix=True)).count == 2

        await poll(queued, what="second contender queued")
        assert not waiter.done()
        order.append("first")
        guarded = await c.txn().if_(first.is_owner()).then(Op.put(prefix + "guarded", "1")).commit()
        assert guarded.succeeded
        await first.release()
        await asyncio.wait_for(waiter, 10)
        order.append("second")
        assert second.key.startswith((prefix + "lock/").encode())
        not_owner = await c.txn().if_(first.is_owner()).then(Op.put(prefix + "guarded", "2")).commit()
        assert not not_owner.succeeded
        await second.release()
        assert order == ["first", "second"]


async def test_lock_on_an_expired_session_raises(etcd1: ProcessCluster, prefix: str) -> None:
    async with Client(etcd1.endpoints) as c:
        s = await Session(c, ttl=10).start()
        await c.revoke(s.lease_id)

        async def gone() -> bool:
            return s.done

        await poll(gone, what="session ends after its lease is revoked")
        with pytest.raises(SessionExpiredError):
            await Lock(s, prefix + "lock").acquire()
        await s.close()


async def test_lock_interoperates_with_etcdctl(etcd1: ProcessCluster, prefix: str) -> None:
    """A lock held by real etcdctl keeps our Lock waiting, and vice versa the key layout is etcd's."""
    proc = await asyncio.create_subprocess_exec(
        "/usr/bin/etcdctl", f"--endpoints={etcd1.endpoints[0]}", "lock", prefix + "x",
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "ETCDCTL_API": "3"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.decode().startswith(prefix + "x/")
        async with Client(etcd1.endpoints) as c, Session(c, ttl=10) as s:
            lock = Lock(s, prefix + "x")
            task = asyncio.create_task(lock.acquire())

            async def queued() -> bool:
                return (await c.get(prefix + "x/", prefix=True)).count == 2

            await poll(queued, what="our contender queued behind etcdctl's")
            assert not task.done()
            proc.send_signal(signal.SIGINT)  # etcdctl unlocks on SIGINT
            await asyncio.wait_for(task, 10)
            await lock.release()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_election_campaign_observe_proclaim_resign(etcd1: ProcessCluster, prefix: str) -> None:
    name = prefix + "election"
    async with Client(etcd1.endpoints) as c, Session(c, ttl=10) as s1, Session(c, ttl=10) as s2:
        e1, e2 = Election(s1, name), Election(s2, name)
        with pytest.raises(ElectionNoLeaderError):
            await e1.leader()
        await e1.campaign("alpha")
        assert (await e1.leader()).kvs[0].value == b"alpha"
        seen: list[bytes] = []

        async def observe() -> None:
            async for resp in e2.observe():
                seen.append(resp.kvs[0].value)
                if resp.kvs[0].value == b"beta":
                    return

        observer = asyncio.create_task(observe())
        second = asyncio.create_task(e2.campaign("beta"))

        async def saw_alpha() -> bool:
            return seen[:1] == [b"alpha"]

        await poll(saw_alpha, what="observer sees alpha")
        await e1.proclaim("alpha2")
        await e1.resign()
        await asyncio.wait_for(second, 10)
        await asyncio.wait_for(observer, 10)
        assert seen[0] == b"alpha" and seen[-1] == b"beta" and b"alpha2" in seen
        await e2.resign()


# ------------------------------------------------------------------------ maintenance


async def test_status_hash_members_alarms_snapshot(etcd1: ProcessCluster, tmp_path: Path) -> None:
    async with Client(etcd1.endpoints) as c:
        st = await c.status(endpoint=etcd1.endpoints[0])
        assert st.version.startswith("3.4") and st.is_leader and st.db_size > 0
        h = await c.hash_kv(endpoint=etcd1.endpoints[0])
        assert h.hash > 0
        members = await c.member_list()
        assert [m.name for m in members.members] == ["n1"]
        assert (await c.alarm_list()).alarms == []
        await c.defragment(endpoint=etcd1.endpoints[0])
        size = await c.snapshot(tmp_path / "snap.db", endpoint=etcd1.endpoints[0])
        assert (tmp_path / "snap.db").stat().st_size == size and not (tmp_path / "snap.db.part").exists()


# --------------------------------------------------------------------- failures, 3 members


@pytest.mark.cluster
async def test_reads_fail_over_when_a_member_is_down(etcd3: ProcessCluster, prefix: str) -> None:
    async with Client(etcd3.endpoints, timeout=5) as c:
        await c.put(prefix + "k", "v")
        etcd3.kill(0)
        for _ in range(6):  # round-robin passes over the dead member every third call
            resp = await c.get(prefix + "k")
            assert resp.kvs[0].value == b"v"
        st = await c.status(endpoint=etcd3.endpoints[1])
        assert st.leader != 0


async def _create_once(c: Client, key: str, value: str) -> None:
    """Create ``key`` exactly once, even across failures: the write is a transaction that only
    puts if the key does not exist, so retrying it after an unknown outcome is safe."""
    while True:
        try:
            await c.txn().if_(Compare.create(key, "=", 0)).then(Op.put(key, value)).commit()
            return
        except (OutcomeUnknownError, EtcdServerError, DeadlineExceededError, EndpointsUnavailableError):
            await asyncio.sleep(0.05)  # back off while the cluster elects a leader


@pytest.mark.cluster
async def test_watch_survives_restart_of_its_member_without_gaps(etcd3: ProcessCluster, prefix: str) -> None:
    """The watch is served by the leader (the first endpoint gets the first call), so killing
    its member also forces an election while writes go on."""
    total = 60
    leader = etcd3.wait_healthy()
    ordered = [etcd3.endpoints[leader], *(ep for i, ep in enumerate(etcd3.endpoints) if i != leader)]
    async with asyncio.timeout(120), Client(ordered) as c:
        async with c.watch(prefix, prefix=True) as w:
            served_by = etcd3.endpoints.index(w.endpoint or "")
            assert served_by == leader
            others = [ep for i, ep in enumerate(etcd3.endpoints) if i != served_by]

            async def writer() -> None:
                async with Client(others, timeout=5) as wc:
                    for i in range(total):
                        if i == total // 3:
                            etcd3.kill(served_by)
                        if i == 2 * total // 3:
                            etcd3.start_member(served_by)
                        await _create_once(wc, f"{prefix}{i:03d}", str(i))

            task = asyncio.create_task(writer())
            revisions: list[int] = []
            keys: list[str] = []
            async for batch in w:
                for ev in batch.events:
                    revisions.append(ev.kv.mod_revision)
                    keys.append(ev.kv.key_str)
                if len(keys) >= total or (task.done() and task.exception() is not None):
                    break
            await task
        assert keys == [f"{prefix}{i:03d}" for i in range(total)]
        assert revisions == list(range(revisions[0], revisions[0] + total))  # no gap, no repeat
        assert w.resumes >= 1


@pytest.mark.cluster
async def test_write_to_a_frozen_member_has_unknown_outcome(etcd3: ProcessCluster, prefix: str) -> None:
    """SIGSTOP freezes the member after the connection is up: the write is sent, no answer
    comes, and the client must not retry it elsewhere."""
    async with Client([etcd3.endpoints[0]], timeout=1.0) as c:
        await c.put(prefix + "warm", "up")
        proc = etcd3.members[0].proc
        assert proc is not None
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(OutcomeUnknownError) as info:
                await c.put(prefix + "k", "v")
            assert info.value.etcd_message == "context deadline exceeded"
            with pytest.raises(DeadlineExceededError):
                await c.get(prefix + "k")
        finally:
            os.killpg(proc.pid, signal.SIGCONT)


@pytest.mark.cluster
async def test_keep_alive_fails_over_when_its_member_dies(etcd3: ProcessCluster, prefix: str) -> None:
    async with Client(etcd3.endpoints, timeout=5) as c:
        lease = await c.grant(3)
        await c.put(prefix + "alive", "v", lease=lease.id)
        async with c.keep_alive(lease.id) as ka:

            async def renewed() -> bool:
                return ka.last is not None and ka.endpoint is not None

            await poll(renewed, what="first renewal")
            first = ka.endpoint
            etcd3.kill(etcd3.endpoints.index(first or ""))
            deadline = time.monotonic() + 7.0  # more than two TTLs
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                assert not ka.done
            assert ka.endpoint != first
            assert (await c.get(prefix + "alive")).count == 1
        await c.revoke(lease.id)


async def test_authentication(tmp_path: Path, prefix: str) -> None:
    with client_test_cluster(tmp_path, 1) as cluster:
        cluster.start()
        cluster.wait_healthy()
        env = {**os.environ, "ETCDCTL_API": "3"}
        for args in (["user", "add", "root:secret"], ["auth", "enable"]):
            proc = await asyncio.create_subprocess_exec(
                "/usr/bin/etcdctl", f"--endpoints={cluster.endpoints[0]}", *args,
                stdout=asyncio.subprocess.DEVNULL, env=env,
            )  # fmt: skip
            assert await proc.wait() == 0
        async with Client(cluster.endpoints, username="root", password="secret") as c:
            await c.put(prefix + "k", "v")
            assert (await c.get(prefix + "k")).kvs[0].value == b"v"
        async with Client(cluster.endpoints) as anonymous:
            with pytest.raises(UserEmptyError) as info:  # etcd's auth errors are typed
                await anonymous.get(prefix + "k")
            assert info.value.etcd_message == "etcdserver: user name is empty"
        async with Client(cluster.endpoints, username="root", password="wrong") as bad:
            with pytest.raises(AuthFailedError, match="authentication failed"):
                await bad.get(prefix + "k")
        ep = f"--endpoints={cluster.endpoints[0]}"
        for args in (["--user=root:secret", "get", prefix + "k", "-w", "fields"],
                     ["--user=root", "--password=secret", "get", prefix + "k"],
                     ["get", prefix + "k"]):  # fmt: skip
            assert await _both_tools([ep, *args])


async def _both_tools(args: list[str]) -> bool:
    """Run etcdctl and minietcdctl with ``args``: same stdout and exit code?"""
    import sys

    root = str(Path(__file__).resolve().parents[3])
    results = []
    for tool in (["/usr/bin/etcdctl"], [sys.executable, "-m", "minietcdctl"]):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
        proc = await asyncio.create_subprocess_exec(
            *tool, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**env, "ETCDCTL_API": "3", "PYTHONPATH": root}, cwd=root,
        )  # fmt: skip
        out, _ = await proc.communicate()
        results.append((proc.returncode, out))
    assert results[0] == results[1], (args, results)
    return True


async def test_tls_with_client_certificates(tmp_path: Path, prefix: str) -> None:
    certs = make_test_certs(tmp_path)
    flags = [
        "--cert-file", certs["server.pem"], "--key-file", certs["server.key"],
        "--trusted-ca-file", certs["ca.pem"], "--client-cert-auth",
    ]  # fmt: skip
    probe = ClientTLS(certs["ca.pem"], certs["client.pem"], certs["client.key"])
    with client_test_cluster(
        tmp_path / "etcd", 1, client_scheme="https", extra_flags=flags, client_tls=probe
    ) as cluster:
        cluster.start()
        cluster.wait_healthy()
        port = cluster.members[0].client_port
        tls = {"ca_file": certs["ca.pem"], "cert_file": certs["client.pem"], "key_file": certs["client.key"]}
        # https:// endpoints, and a bare host:port once TLS files are given.
        for ep in (cluster.endpoints[0], f"127.0.0.1:{port}"):
            async with Client([ep], **tls) as c:  # type: ignore[arg-type]  # Client's TLS keywords
                await c.put(prefix + "tls", "yes")
                assert (await c.get(prefix + "tls")).kvs[0].value == b"yes"
        async with Client([cluster.endpoints[0]], ca_file=certs["ca.pem"], timeout=2) as no_cert:
            with pytest.raises(Exception):  # noqa: B017 - the handshake is refused without a client cert
                await no_cert.get(prefix + "tls")
        tls_flags = [
            f"--cacert={certs['ca.pem']}",
            f"--cert={certs['client.pem']}",
            f"--key={certs['client.key']}",
        ]
        for args in (
            [f"--endpoints={cluster.endpoints[0]}", *tls_flags, "get", prefix + "tls", "-w", "json"],
            [f"--endpoints=127.0.0.1:{port}", *tls_flags, "endpoint", "status", "-w", "fields"],
            [f"--endpoints={cluster.endpoints[0]}", "--cacert=/nonexistent/ca.pem", "get", prefix + "tls"],
        ):
            assert await _both_tools(args)
