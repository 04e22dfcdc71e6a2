"""``minietcd.embed.Etcd``: a member in the test's own event loop, serving the async client and
the real etcdctl at once; restarts on its data dir; refuses a second member; fails cleanly."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from minietcd.client import Client
from minietcd.embed import Etcd
from minietcd.errors import ConfigError
from tests.cluster.harness import require_binary


async def _etcdctl(etcd: Etcd, *args: str) -> str:
    """The real etcdctl against the embedded member, run without blocking the loop it serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    proc = await asyncio.create_subprocess_exec(
        require_binary("etcdctl"),
        "--endpoints", etcd.client_url, *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**env, "ETCDCTL_API": "3"},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_serves_the_async_client_and_etcdctl_in_one_test(tmp_path: Path) -> None:
    async with Etcd(tmp_path / "etcd", name="embedded") as etcd, Client(etcd.endpoints) as client:
        await client.put("greeting", "hello")
        assert await _etcdctl(etcd, "get", "greeting") == "greeting\nhello\n"
        await _etcdctl(etcd, "put", "from-etcdctl", "42")
        got = await client.get("from-etcdctl")
        assert got.kvs[0].value == b"42"
        members = json.loads(await _etcdctl(etcd, "member", "list", "-w", "json"))["members"]
        assert [m["name"] for m in members] == ["embedded"]
        assert members[0]["clientURLs"] == etcd.endpoints
        # Its metrics URL answers /health as a process member's does.
        reader, writer = await asyncio.open_connection(*etcd.metrics_url.split("//")[1].split(":"))
        writer.write(b"GET /health HTTP/1.0\r\n\r\n")
        assert b'"health": "true"' in await reader.read()
        writer.close()


async def test_restarts_on_its_data_dir_and_flags_win(tmp_path: Path) -> None:
    async with Etcd(tmp_path / "etcd") as etcd, Client(etcd.endpoints) as client:
        await client.put("kept", "yes")
    flags = ["--heartbeat-interval=20", "--election-timeout=200"]
    async with Etcd(tmp_path / "etcd", flags=flags) as etcd, Client(etcd.endpoints) as client:
        assert etcd.config is not None and etcd.config.election_timeout == 200
        assert (await client.get("kept")).kvs[0].value == b"yes"


async def test_one_embedded_member_at_a_time(tmp_path: Path) -> None:
    async with Etcd(tmp_path / "a"):
        with pytest.raises(ConfigError, match=r"already runs in this process: one at a time"):
            async with Etcd(tmp_path / "b"):
                pass
    async with Etcd(tmp_path / "b"):  # the first one is stopped: fine now
        pass


async def test_bad_flags_and_a_failed_start_leave_nothing_running(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="flag provided but not defined: -no-such-flag"):
        async with Etcd(tmp_path / "etcd", flags=["--no-such-flag"]):
            pass
    # An https listener without a certificate fails at start, as the command does.
    with pytest.raises(ConfigError, match="TLS key/cert"):
        async with Etcd(tmp_path / "etcd", flags=["--listen-client-urls=https://127.0.0.1:0"]):
            pass
    async with Etcd(tmp_path / "etcd"):  # nothing left behind that breaks the next one
        pass
