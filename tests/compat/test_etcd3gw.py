"""etcd3gw (a Python client of etcd's JSON gateway, used by OpenStack) works against minietcd as
against etcd 3.4: one scenario of put/get/delete, leases, a watch and a lock runs against a
fresh 1-member etcd and a fresh 1-member minietcd; both give the same observations.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import ProcessCluster, etcd_binary, minietcd_binary

pytestmark = [pytest.mark.compat, pytest.mark.cluster]


def _etcd3gw() -> Any:
    """The etcd3gw module (optional: a dev extra), or skip (fail in CI)."""
    try:
        return importlib.import_module("etcd3gw")
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("etcd3gw is not installed; CI must have it (the dev extras)", pytrace=False)
        pytest.skip("etcd3gw is not installed (pip install etcd3gw)")


def scenario(port: int) -> list[Any]:
    """What etcd3gw sees, step by step (only what two servers must agree on)."""
    etcd3gw = _etcd3gw()
    client = etcd3gw.client(host="127.0.0.1", port=port, timeout=10)
    seen: list[Any] = [client.api_path, sorted(m["name"] for m in client.members())]
    seen.append(client.put("/app/a", "1"))
    seen.append(client.put("/app/b", "2"))
    seen.append(client.get("/app/a"))
    seen.append(sorted((v, m["key"]) for v, m in client.get_prefix("/app/")))
    seen.append(client.create("/app/a", "again"))  # exists: False
    seen.append(client.create("/app/c", "3"))
    seen.append(client.replace("/app/c", "3", "4"))
    seen.append(client.replace("/app/c", "3", "5"))  # not the old value: False
    seen.append(client.get("/app/c"))
    seen.append(client.delete("/app/b"))
    seen.append(client.delete("/app/b"))  # gone: False
    seen.append(client.get("/app/b"))

    lease = client.lease(ttl=30)
    seen.append(lease.ttl() in (29, 30))
    seen.append(client.put("/app/leased", "x", lease=lease))
    seen.append(lease.keys())
    seen.append(lease.refresh())
    seen.append(lease.revoke())
    seen.append(client.get("/app/leased"))

    # A watch in a thread of its own, as etcd3gw runs it; two puts it must see, in order.
    events, cancel = client.watch("/app/w")
    got: list[tuple[str, str]] = []

    def consume() -> None:
        for ev in events:
            value = ev.get("kv", {}).get("value", b"")
            got.append((ev.get("type", "PUT"), value.decode() if isinstance(value, bytes) else value))
            if len(got) == 2:
                return

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(0.5)  # the watch is created before the writes
    client.put("/app/w", "one")
    client.put("/app/w", "two")
    reader.join(timeout=10)
    cancel()
    seen.append(got)

    lock = client.lock("mylock", ttl=30)
    seen.append(lock.acquire())
    other = client.lock("mylock", ttl=30)
    seen.append(other.is_acquired())
    seen.append(lock.is_acquired())
    seen.append(lock.release())
    seen.append(lock.is_acquired())
    seen.append(client.delete_prefix("/app/"))
    seen.append(client.get_prefix("/app/"))
    return seen


def test_etcd3gw_scenario_as_against_etcd(tmp_path: Path) -> None:
    _etcd3gw()
    results = {}
    for name, binary in (("etcd", etcd_binary()), ("minietcd", minietcd_binary())):
        with ProcessCluster(binary, 1, tmp_path / name) as cluster:
            cluster.start()
            cluster.wait_healthy(30)
            results[name] = scenario(cluster.members[0].client_port)
    assert results["minietcd"] == results["etcd"]
    seen = results["minietcd"]
    assert seen[0] == "/v3/" and seen[5] == [(b"1", b"/app/a"), (b"2", b"/app/b")], seen
    assert seen[6:10] == [False, True, True, False], seen  # create, create, replace, replace
    assert [("PUT", "one"), ("PUT", "two")] in seen, seen  # the watch
    assert seen[-7:-2] == [True, False, True, True, False], seen  # the lock
