"""minietcd.server.corrupt: the initial corruption check against peers served by real Transports
(RaftPeer.HashKV over gRPC on 127.0.0.1, in the test's event loop)."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from minietcd.errors import CompactedRevisionError, FutureRevisionError, InconsistentDataError
from minietcd.mvcc import HashKVResult
from minietcd.server.corrupt import check_initial_hash_kv, request_timeout
from minietcd.server.transport import Transport

CLUSTER = 0xC1
ME, PEER = 0xA1, 0xB2
LOCAL = HashKVResult(hash=1234, revision=13, compact_revision=-1)

HashKV = Callable[[int], Awaitable[HashKVResult]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answer(result: HashKVResult | Exception) -> HashKV:
    async def hash_kv(revision: int) -> HashKVResult:
        assert revision == LOCAL.revision  # asked at the checking member's revision
        if isinstance(result, Exception):
            raise result
        return result

    return hash_kv


async def _local(revision: int) -> HashKVResult:
    assert revision == 0
    return LOCAL


class Pair:
    """The checking member's transport (not serving) and one peer's (serving HashKV)."""

    def __init__(self, peer_answer: HashKV, peer_cluster: int = CLUSTER) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.me = _transport(CLUSTER, ME)
        self.peer = _transport(peer_cluster, PEER, hash_kv=peer_answer)

    async def check(self, urls: list[str] | None = None) -> None:
        await check_initial_hash_kv(
            member_id=ME,
            cluster_id=CLUSTER,
            hash_kv=_local,
            peers=[(PEER, urls or [self.url])],
            open_channel=self.me.open_channel,
            timeout=5.0,
        )


def _transport(cluster_id: int, member_id: int, hash_kv: HashKV | None = None) -> Transport:
    return Transport(
        cluster_id=cluster_id,
        member_id=member_id,
        on_message=_ignore,
        on_unreachable=_ignore,
        on_snapshot_status=_ignore2,
        hash_kv=hash_kv,
    )


def _ignore(_: object) -> None:
    pass


def _ignore2(_: object, __: object) -> None:
    pass


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Awaitable[Pair]]]:
    made: list[Pair] = []

    async def make(answer: HashKV, peer_cluster: int = CLUSTER) -> Pair:
        pair = Pair(answer, peer_cluster)
        await pair.peer.start([pair.url])
        pair.peer.add_peer(ME, ["http://127.0.0.1:1"])  # the asker is a member the peer knows
        made.append(pair)
        return pair

    yield make
    for pair in made:
        await pair.peer.stop()
        await pair.me.stop()


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name == "minietcd.server"]


async def test_agreeing_peers_pass(
    make: Callable[..., Awaitable[Pair]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pair = await make(_answer(HashKVResult(1234, 13, -1)))
    await pair.check()
    assert _messages(caplog, logging.INFO) == [
        "etcdserver: a1 starting initial corruption check with timeout 5s...",
        "etcdserver: a1 succeeded on initial corruption checking: no corruption",
    ]
    assert request_timeout(1000) == 7.0  # etcd's ReqTimeout: 5 s + 2 election timeouts


async def test_another_hash_at_the_same_compact_revision_refuses_the_start(
    make: Callable[..., Awaitable[Pair]], caplog: pytest.LogCaptureFixture
) -> None:
    pair = await make(_answer(HashKVResult(999, 14, -1)))
    with pytest.raises(InconsistentDataError) as info:
        await pair.check()
    assert str(info.value) == "a1 found data inconsistency with peers"
    assert _messages(caplog, logging.ERROR) == [
        "etcdserver: a1's hash 1234 != b2's hash 999 (revision 13, peer revision 14, compact revision -1)"
    ]


@pytest.mark.parametrize(
    ("answer", "warning"),
    [
        (
            HashKVResult(999, 13, 5),
            "etcdserver: a1 cannot check hash of peer(b2): peer has a different compact revision 5 "
            "(revision:13)",
        ),
        (
            FutureRevisionError(),
            'etcdserver: a1 cannot check the hash of peer(["URL"]) at revision 13: peer is lagging '
            'behind("etcdserver: mvcc: required revision is a future revision")',
        ),
        (
            CompactedRevisionError(),
            'etcdserver: a1 cannot check the hash of peer(["URL"]) at revision 13: local node is lagging '
            'behind("etcdserver: mvcc: required revision has been compacted")',
        ),
    ],
    ids=["other-compact-revision", "peer-behind", "local-behind"],
)
async def test_peers_that_cannot_be_compared_are_warned_about(
    answer: HashKVResult | Exception,
    warning: str,
    make: Callable[..., Awaitable[Pair]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    pair = await make(_answer(answer))
    await pair.check()  # not a mismatch: the start goes on
    assert _messages(caplog, logging.WARNING) == [warning.replace("URL", pair.url)]
    assert "no corruption" in _messages(caplog, logging.INFO)[-1]


async def test_unreachable_and_foreign_peers_are_skipped(
    make: Callable[..., Awaitable[Pair]], caplog: pytest.LogCaptureFixture
) -> None:
    stranger = await make(_answer(HashKVResult(999, 13, -1)), peer_cluster=0xF0)
    down = f"http://127.0.0.1:{_free_port()}"
    await stranger.check([down, stranger.url])  # each URL in turn; neither answers a hash
    warnings = _messages(caplog, logging.WARNING)
    assert len(warnings) == 2
    assert warnings[0].startswith('etcdserver: a1 hash-kv error "UNAVAILABLE: ')
    assert warnings[0].endswith(f' on peer "{down}" with revision 13')
    assert 'hash-kv error "FAILED_PRECONDITION: cluster ID mismatch' in warnings[1]
