"""Running the fault proxy as a process, and minietcd.lab.toxiproxy's choice of server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from toxiproxy import Toxiproxy

from minietcd.lab.faultproxy import VERSION
from minietcd.lab.toxiproxy import (
    ToxiproxyHandle,
    async_toxiproxy_endpoint,
    configure_client,
    parse_url,
    start_toxiproxy,
    toxiproxy_endpoint,
)
from tests.unit.faultproxy.support import DEADLINE

REPO = Path(__file__).resolve().parents[3]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=DEADLINE) as response:
        return json.loads(response.read())


def _exited(pid: int) -> bool:
    """True once ``pid`` is gone or a zombie nobody has reaped yet."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _wait_exited(pid: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while not _exited(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.02)


def _no_toxiproxy_server() -> dict[str, str]:
    # Looked up only for the binary; an empty PATH means "not installed".
    return {"PATH": ""}


@pytest.fixture
def no_api_consumer_leak() -> Any:
    from toxiproxy.api import APIConsumer

    saved = (APIConsumer.host, APIConsumer.port)
    yield
    APIConsumer.host, APIConsumer.port = saved


def test_cli_banner_with_double_dash_flags(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(
        json.dumps([{"name": "from_config", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}])
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minietcd.lab.faultproxy",
            "--host=127.0.0.1",
            "--port",
            "0",
            "-config",
            str(config),
            "-seed",
            "7",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "LOG_LEVEL": "warn"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert "listening on http://127.0.0.1:" in line
        url = line.split()[-1]
        assert _get(f"{url}/version") == {"version": VERSION}
        proxies = _get(f"{url}/proxies")
        assert set(proxies) == {"from_config"}
        assert proxies["from_config"]["enabled"] is True
    finally:
        process.terminate()
        assert process.wait(timeout=DEADLINE) == 0
        assert process.stdout is not None
        process.stdout.close()


def test_cli_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "minietcd.lab.faultproxy", "-version"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=DEADLINE,
    )
    assert result.stdout.decode().strip() == f"toxiproxy-server version {VERSION}"


def test_parse_url() -> None:
    assert parse_url("127.0.0.1:9") == ("http://127.0.0.1:9", "127.0.0.1", 9)
    assert parse_url("http://toxi") == ("http://toxi:8474", "toxi", 8474)


def test_env_url_wins_and_is_not_started() -> None:
    handle = start_toxiproxy(environ={"TOXIPROXY_URL": "toxi.example:18474", "PATH": ""})
    assert (handle.url, handle.source, handle.process) == (
        "http://toxi.example:18474",
        "env",
        None,
    )
    handle.close()  # nothing to stop
    with toxiproxy_endpoint(environ={"TOXIPROXY_URL": "http://10.0.0.9:8474"}) as url:
        assert url == "http://10.0.0.9:8474"


def test_falls_back_to_the_fault_proxy(no_api_consumer_leak: None) -> None:
    with start_toxiproxy(environ=_no_toxiproxy_server()) as handle:
        assert handle.source == "faultproxy"
        assert handle.process is not None
        pid = handle.process.pid
        assert handle.url == f"http://127.0.0.1:{handle.port}"
        handle.configure_client()
        client = Toxiproxy()
        assert client.running()
        proxy = client.create(upstream="127.0.0.1:1", name="via_helper")
        assert client.get_proxy("via_helper") is not None
        assert proxy.destroy()
    _wait_exited(pid)


def test_prefers_a_toxiproxy_server_on_path(tmp_path: Path) -> None:
    # A stand-in binary that is really this fault proxy: it proves the helper
    # finds the binary, passes toxiproxy-server's flag spelling, waits for it
    # to answer, and stops it again.
    fake = tmp_path / "toxiproxy-server"
    fake.write_text(f'#!/bin/sh\ncd {str(REPO)!r}\nexec {sys.executable!r} -m minietcd.lab.faultproxy "$@"\n')
    fake.chmod(0o755)
    with start_toxiproxy(environ={"PATH": str(tmp_path)}) as handle:
        assert handle.source == "toxiproxy-server"
        assert handle.process is not None
        pid = handle.process.pid
        assert _get(f"{handle.url}/version") == {"version": VERSION}
    _wait_exited(pid)


async def test_async_endpoint() -> None:
    async with async_toxiproxy_endpoint(environ=_no_toxiproxy_server()) as url:
        _url, host, _port = parse_url(url)
        assert host == "127.0.0.1"


def test_configure_client_sets_toxiproxy_python(no_api_consumer_leak: None) -> None:
    from toxiproxy.api import APIConsumer

    configure_client("http://127.0.0.2:1234")
    assert (APIConsumer.host, APIConsumer.port) == ("127.0.0.2", 1234)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to watch a pid")
def test_orphaned_fault_proxy_exits() -> None:
    # A test run killed hard must not leave fault proxies running.
    script = (
        "import os\n"
        "from minietcd.lab.toxiproxy import start_toxiproxy\n"
        "handle = start_toxiproxy(environ={'PATH': ''})\n"
        "print(handle.process.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, check=True, timeout=DEADLINE
    )
    _wait_exited(int(result.stdout))


def test_handle_close_is_idempotent() -> None:
    handle = ToxiproxyHandle("http://127.0.0.1:1", "127.0.0.1", 1, "env")
    handle.close()
    handle.close()
