"""One scenario of etcd v3 calls, run by a third-party Python client against one endpoint.

The client scripts beside this file (``etcd3_client.py``, ``aetcd_client.py``) wrap one client
library each in the small :class:`Client` interface below and call :func:`main`. They run as
subprocesses of ``tests/compat/test_python_clients.py``, never inside pytest: every library
ships its own generated ``*_pb2`` modules for the same proto packages (``etcdserverpb``,
``mvccpb``, ``authpb``) as minietcd's, and protobuf refuses to load two definitions of one symbol
into its default pool ("duplicate symbol 'authpb.UserAddOptions'").

Each step runs on its own keys (under ``--prefix``), checks what it saw and records an
*observation*: what real etcd gives too (revisions relative to the step's first write, no lease
or member IDs), so the test can compare minietcd's observations with etcd's. The script prints
one JSON object on stdout::

    {"client": "etcd3", "steps": {"kv": {"ok": true, "error": null, "observed": {...}}, ...},
     "members": [{"name": "n1", "peer_urls": [...], "client_urls": [...]}, ...]}

and exits 1 if any step failed. This module imports no protobuf, so a client script can pick
the protobuf implementation before anything loads it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

# Every wait in the scenario polls against a deadline this long (the machine may be busy).
DEADLINE = 30.0


@dataclass(frozen=True)
class KV:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True)
class Event:
    type: str  # "PUT" or "DELETE"
    key: bytes
    value: bytes
    mod_revision: int


@dataclass(frozen=True)
class MemberInfo:
    id: int
    name: str
    peer_urls: list[str]
    client_urls: list[str]


# A comparison: (target, key, operator, operand); target is value/version/create/mod, operator
# one of == != < >.
Compare = tuple[str, bytes, str, Any]
# An operation in a transaction: ("put", key, value), ("get", key) or ("delete", key).
TxnOp = tuple[Any, ...]


class Watch(Protocol):
    async def next_event(self, timeout: float) -> Event | None:
        """The next event, or None if none came within ``timeout`` seconds."""

    async def cancel(self) -> None: ...


class Client(Protocol):
    name: str

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Put; return the response header's revision."""

    async def get(self, key: bytes) -> KV | None: ...

    async def get_prefix(self, prefix: bytes) -> list[KV]: ...

    async def delete(self, key: bytes) -> tuple[int, int | None]:
        """Delete one key; return (number deleted, header revision if the client exposes it)."""

    async def delete_prefix(self, prefix: bytes) -> int: ...

    async def txn(
        self, compare: list[Compare], success: list[TxnOp], failure: list[TxnOp]
    ) -> tuple[bool, list[Any]]:
        """Return (succeeded, one normalised result per op: "put", [values], or deleted count)."""

    async def watch(self, key: bytes, *, prefix: bool, start_revision: int | None) -> Watch: ...

    async def lease_grant(self, ttl: int) -> tuple[int, int]:
        """Return (lease ID, granted TTL)."""

    async def lease_info(self, lease_id: int) -> tuple[int, int, list[bytes]]:
        """Return (remaining TTL, granted TTL, attached keys)."""

    async def lease_refresh(self, lease_id: int) -> int:
        """One keep-alive; return the TTL it answered."""

    async def lease_revoke(self, lease_id: int) -> None: ...

    async def members(self) -> list[MemberInfo]: ...

    async def status(self) -> tuple[str, int]:
        """Return (server version, leader member ID)."""

    async def close(self) -> None: ...


class CheckFailed(AssertionError):
    pass


def check(cond: object, what: str) -> None:
    if not cond:
        raise CheckFailed(what)


def kv_view(kv: KV | None, base: int) -> dict[str, Any] | None:
    if kv is None:
        return None
    return {
        "value": kv.value.decode(),
        "create_rel": kv.create_revision - base,
        "mod_rel": kv.mod_revision - base,
        "version": kv.version,
        "has_lease": kv.lease != 0,
    }


async def collect_events(w: Watch, n: int, what: str) -> list[Event]:
    """Exactly ``n`` events, polled against the deadline."""
    deadline = time.monotonic() + DEADLINE
    events: list[Event] = []
    while len(events) < n:
        left = deadline - time.monotonic()
        check(left > 0, f"{what}: only {len(events)} of {n} events within {DEADLINE:.0f}s: {events}")
        ev = await w.next_event(min(left, 1.0))
        if ev is not None:
            events.append(ev)
    return events


# ---------------------------------------------------------------------------------- the steps


async def step_kv(c: Client, p: bytes) -> dict[str, Any]:
    k = p + b"k"
    r1 = await c.put(k, b"v1")
    check(r1 > 0, f"put returned revision {r1}")
    first = await c.get(k)
    check(first is not None, "get after put: key missing")
    assert first is not None
    check(first.key == k and first.value == b"v1", f"get after put: {first}")
    check(first.create_revision == r1 and first.mod_revision == r1, f"revisions {first} vs put {r1}")
    check(first.version == 1 and first.lease == 0, f"version/lease {first}")
    r2 = await c.put(k, b"v2")
    check(r2 > r1, f"second put revision {r2} not after {r1}")
    second = await c.get(k)
    check(second is not None and second.value == b"v2", f"get after 2nd put: {second}")
    assert second is not None
    check(second.create_revision == r1 and second.mod_revision == r2 and second.version == 2, str(second))
    missing = await c.get(p + b"missing")
    check(missing is None, f"get of a missing key: {missing}")
    empty = await c.get_prefix(p + b"nothing/")
    check(empty == [], f"empty prefix: {empty}")
    return {
        "put_rel": [0, r2 - r1],
        "first": kv_view(first, r1),
        "second": kv_view(second, r1),
        "missing": missing,
    }


async def step_prefix(c: Client, p: bytes) -> dict[str, Any]:
    revs = []
    for name in (b"p/b", b"p/a", b"p/c", b"q/x", b"p"):
        revs.append(await c.put(p + name, name.upper()))
    got = await c.get_prefix(p + b"p/")
    keys = [kv.key[len(p) :].decode() for kv in got]
    check(keys == ["p/a", "p/b", "p/c"], f"prefix p/ gave keys {keys} (want sorted p/a p/b p/c)")
    check([kv.value for kv in got] == [b"P/A", b"P/B", b"P/C"], f"values {[kv.value for kv in got]}")
    base = revs[0]
    return {"keys": keys, "kvs": [kv_view(kv, base) for kv in got]}


async def step_delete(c: Client, p: bytes) -> dict[str, Any]:
    k = p + b"d"
    r0 = await c.put(k, b"x")
    deleted, rev = await c.delete(k)
    check(deleted == 1, f"delete of an existing key deleted {deleted}")
    check(rev is None or rev == r0 + 1, f"delete revision {rev}, put was {r0}")
    check(await c.get(k) is None, "key still there after delete")
    again, _ = await c.delete(k)
    check(again == 0, f"second delete deleted {again}")
    for i in range(3):
        await c.put(p + b"dp/" + str(i).encode(), b"y")
    await c.put(p + b"dq", b"stays")
    n = await c.delete_prefix(p + b"dp/")
    check(n == 3, f"delete_prefix deleted {n}, want 3")
    left = await c.get_prefix(p + b"dp/")
    check(left == [], f"left after delete_prefix: {left}")
    stays = await c.get(p + b"dq")
    check(stays is not None and stays.value == b"stays", f"neighbour key: {stays}")
    return {"deleted": deleted, "again": again, "prefix_deleted": n}


async def step_txn(c: Client, p: bytes) -> dict[str, Any]:
    k, other = p + b"t", p + b"t2"
    r0 = await c.put(k, b"a")
    ok, res = await c.txn(
        [("value", k, "==", b"a")],
        [("put", k, b"b"), ("get", k), ("put", other, b"o")],
        [("put", k, b"failed")],
    )
    check(ok is True, "txn value == a did not succeed")
    check(res == ["put", [b"b"], "put"], f"success responses {res} (a get after a put in one txn sees it)")
    after = await c.get(k)
    check(after is not None and after.value == b"b", f"after txn: {after}")
    assert after is not None
    o = await c.get(other)
    check(o is not None and o.mod_revision == after.mod_revision, "one txn = one revision for both keys")
    ok2, res2 = await c.txn(
        [("value", k, "==", b"a")], [("put", k, b"wrong")], [("get", k), ("delete", other)]
    )
    check(ok2 is False, "txn value == a succeeded on value b")
    check(res2 == [[b"b"], 1], f"failure responses {res2}")
    ok3, _ = await c.txn(
        [("version", k, ">", 1), ("mod", k, "==", after.mod_revision)], [("put", k, b"c")], []
    )
    check(ok3 is True, "txn version > 1 and mod == current failed")
    ok4, _ = await c.txn([("create", p + b"absent", "==", 0)], [("put", p + b"absent", b"new")], [])
    check(ok4 is True, "txn create(absent) == 0 failed")
    ok5, _ = await c.txn([("create", p + b"absent", "==", 0)], [("put", p + b"absent", b"newer")], [])
    check(ok5 is False, "txn create == 0 succeeded on an existing key")
    final = await c.get(k)
    check(final is not None and final.value == b"c" and final.version == 3, f"final {final}")
    created = await c.get(p + b"absent")
    check(created is not None and created.value == b"new", f"created {created}")
    return {
        "results": [ok, ok2, ok3, ok4, ok5],
        "success_responses": [r if isinstance(r, str | int) else [v.decode() for v in r] for r in res],
        "final": kv_view(final, r0),
    }


async def step_watch(c: Client, p: bytes) -> dict[str, Any]:
    wp = p + b"w/"
    live = await c.watch(wp, prefix=True, start_revision=None)
    single = await c.watch(wp + b"b", prefix=False, start_revision=None)
    try:
        ra = await c.put(wp + b"a", b"1")
        rb = await c.put(wp + b"b", b"2")
        await c.put(p + b"not-watched", b"x")
        deleted, rd = await c.delete(wp + b"a")
        check(deleted == 1, "delete w/a")
        rb2 = await c.put(wp + b"b", b"3")
        got = await collect_events(live, 4, "prefix watch")
        one = await collect_events(single, 2, "key watch")
    finally:
        await live.cancel()
        await single.cancel()
    want = [
        ("PUT", wp + b"a", b"1", ra),
        ("PUT", wp + b"b", b"2", rb),
        ("DELETE", wp + b"a", b"", rd),
        ("PUT", wp + b"b", b"3", rb2),
    ]

    def view(evs: list[Event]) -> list[tuple[str, bytes, bytes, int | None]]:
        return [(e.type, e.key, e.value if e.type == "PUT" else b"", e.mod_revision) for e in evs]

    if rd is None:  # the client does not expose the delete's revision: it is the one in between
        rd = ra + 3
        want[2] = ("DELETE", wp + b"a", b"", rd)
    check(view(got) == want, f"prefix watch events {view(got)}, want {want}")
    check(view(one) == [want[1], want[3]], f"key watch events {view(one)}")
    history = await c.watch(wp, prefix=True, start_revision=ra)
    try:
        old = await collect_events(history, 4, "watch from an old revision")
    finally:
        await history.cancel()
    check(view(old) == want, f"watch from revision {ra}: {view(old)}, want {want}")
    return {"events": [(t, k[len(p) :].decode(), v.decode(), (r or 0) - ra) for t, k, v, r in view(got)]}


async def step_lease(c: Client, p: bytes) -> dict[str, Any]:
    lease_id, ttl = await c.lease_grant(60)
    check(lease_id != 0 and ttl == 60, f"grant: id {lease_id:x} ttl {ttl}")
    k = p + b"leased"
    await c.put(k, b"v", lease=lease_id)
    got = await c.get(k)
    check(got is not None and got.lease == lease_id, f"key's lease: {got} (want {lease_id})")
    remaining, granted, keys = await c.lease_info(lease_id)
    check(granted == 60 and 0 < remaining <= 60, f"time-to-live: remaining {remaining} granted {granted}")
    check(keys == [k], f"time-to-live keys {keys}")
    refreshed = await c.lease_refresh(lease_id)
    check(refreshed == 60, f"keep-alive answered TTL {refreshed}")
    remaining2, _, _ = await c.lease_info(lease_id)
    check(55 <= remaining2 <= 60, f"remaining TTL after keep-alive: {remaining2}")
    await c.lease_revoke(lease_id)
    gone = await c.get(k)
    check(gone is None, f"key still there after revoke: {gone}")
    after, _, after_keys = await c.lease_info(lease_id)
    check(after == -1 and after_keys == [], f"time-to-live of a revoked lease: {after} {after_keys}")
    # A lease that is not kept alive expires, and takes its key with it (not before its TTL).
    short, _ = await c.lease_grant(2)
    t0 = time.monotonic()
    await c.put(p + b"short", b"v", lease=short)
    deadline = t0 + DEADLINE
    while await c.get(p + b"short") is not None:
        check(time.monotonic() < deadline, f"a key with a 2 s lease still there after {DEADLINE:.0f}s")
        await asyncio.sleep(0.1)  # polling interval
    expired_after = time.monotonic() - t0
    check(expired_after >= 1.0, f"a key with a 2 s lease was deleted after {expired_after:.2f}s")
    return {
        "granted": ttl,
        "refreshed": refreshed,
        "revoked_ttl": after,
        "keys": [x[len(p) :].decode() for x in keys],
    }


async def step_members(c: Client, p: bytes) -> dict[str, Any]:
    ms = await c.members()
    check(len(ms) == 3, f"{len(ms)} members listed, want 3")
    for m in ms:
        check(m.id != 0 and m.name and m.peer_urls and m.client_urls, f"incomplete member {m}")
    version, leader = await c.status()
    check(leader in {m.id for m in ms}, f"status leader {leader:x} not among the members")
    check(version.startswith("3."), f"status version {version!r}")
    return {
        "names": sorted(m.name for m in ms),
        "urls_per_member": sorted((len(m.peer_urls), len(m.client_urls)) for m in ms),
    }


STEPS: dict[str, Callable[[Client, bytes], Awaitable[dict[str, Any]]]] = {
    "kv": step_kv,
    "prefix": step_prefix,
    "delete": step_delete,
    "txn": step_txn,
    "watch": step_watch,
    "lease": step_lease,
    "members": step_members,
}


async def run(client: Client, prefix: bytes, only: list[str] | None) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for name, fn in STEPS.items():
        if only and name not in only:
            continue
        try:
            observed = await asyncio.wait_for(fn(client, prefix + name.encode() + b"/"), 2 * DEADLINE)
            steps[name] = {"ok": True, "error": None, "observed": observed}
        except BaseException as e:  # a failed step is recorded; the next one still runs
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            detail = str(e) if isinstance(e, CheckFailed) else traceback.format_exc(limit=6)
            steps[name] = {"ok": False, "error": f"{type(e).__name__}: {detail}", "observed": None}
    members: list[dict[str, Any]] = []
    try:
        members = [
            {"id": m.id, "name": m.name, "peer_urls": list(m.peer_urls), "client_urls": list(m.client_urls)}
            for m in await client.members()
        ]
    except Exception as e:
        steps.setdefault("members", {"ok": False, "error": repr(e), "observed": None})
    return {"client": client.name, "steps": steps, "members": members}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--endpoint", required=True, help="host:port of one member")
    ap.add_argument("--prefix", required=True, help="keys used start with this")
    ap.add_argument("--only", action="append", help="run only these steps (repeatable)")
    return ap.parse_args(argv)


def txn_compare(t: Any, cmp: Compare) -> Any:
    """A Compare in the transaction builder that etcd3 and aetcd share (``client.transactions``)."""
    target, key, op, operand = cmp
    side = {"value": t.value, "version": t.version, "create": t.create, "mod": t.mod}[target](key)
    if op == "==":
        return side == operand
    if op == "!=":
        return side != operand
    if op == "<":
        return side < operand
    return side > operand


def txn_op(t: Any, op: TxnOp) -> Any:
    """A TxnOp (``("put", key, value)``, ``("get", key)``, ``("delete", key)``) in that builder."""
    if op[0] == "put":
        return t.put(op[1], op[2])
    if op[0] == "get":
        return t.get(op[1])
    return t.delete(op[1])


def main(make_client: Callable[[str, int], Awaitable[Client]], argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    host, _, port = args.endpoint.rpartition(":")

    async def go() -> dict[str, Any]:
        client = await make_client(host, int(port))
        try:
            return await run(client, args.prefix.encode(), args.only)
        finally:
            await client.close()

    result = asyncio.run(go())
    json.dump(result, sys.stdout, default=lambda b: b.decode() if isinstance(b, bytes) else repr(b))
    sys.stdout.write("\n")
    return 0 if all(s["ok"] for s in result["steps"].values()) else 1
