"""Find or start a Toxiproxy for the lab, and point toxiproxy-python at it.

In order of preference:

1. ``TOXIPROXY_URL`` if set (a server someone else runs; never stopped here);
2. a real ``toxiproxy-server`` on PATH, started on a free 127.0.0.1 port;
3. minietcd's own Toxiproxy-compatible fault proxy, started as a subprocess.

Usage::

    with toxiproxy_endpoint() as url:
        ...  # drive it with toxiproxy-python (see configure_client) or HTTP

Everything started here is stopped on exit. The children are also told our
pid (the fault proxy exits when it is orphaned) so a killed test run does not
leave servers behind; a real toxiproxy-server has no such option.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from minietcd.errors import LabError

ENV_URL = "TOXIPROXY_URL"
SERVER_BINARY = "toxiproxy-server"
DEFAULT_PORT = 8474
_STARTUP_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
# Kept in step with minietcd.lab.faultproxy.__main__ (not imported, so that
# using a real Toxiproxy never imports the fault proxy).
_BANNER = re.compile(rb"listening on (http://\S+)")
_PARENT_PID_ENV = "MINIETCD_FAULTPROXY_PARENT_PID"

Source = Literal["env", "toxiproxy-server", "faultproxy"]


class ToxiproxyUnavailable(LabError):
    """No Toxiproxy could be found or started."""


@dataclass(slots=True)
class ToxiproxyHandle:
    """A Toxiproxy API endpoint, and the process serving it if we started one."""

    url: str
    host: str
    port: int
    source: Source
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def configure_client(self) -> None:
        """Point toxiproxy-python (a process-wide setting) at this server."""
        configure_client(self.url)

    def close(self) -> None:
        """Stop the server if we started it; a no-op for ``TOXIPROXY_URL``."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> ToxiproxyHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def parse_url(url: str) -> tuple[str, str, int]:
    """Normalise a Toxiproxy URL (scheme optional, port 8474 by default)."""
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"no host in Toxiproxy URL {url!r}")
    port = parts.port or DEFAULT_PORT
    host = parts.hostname
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}", host, port


#: Held while toxiproxy-python's process-wide address is set and used (links._answering): a
#: thread that points it at one lab's Toxiproxy must not have its calls sent to another's
#: because a second thread pointed it elsewhere in between (the web view reads the old
#: cluster's links in one thread while it starts the new cluster in another).
CLIENT_LOCK = threading.RLock()


def configure_client(url: str) -> None:
    """Make toxiproxy-python's ``Toxiproxy()`` talk to ``url``.

    toxiproxy-python keeps host and port on a class shared by the whole
    process, so this affects every ``Toxiproxy`` and ``Proxy`` object. Calls that must reach
    ``url`` hold :data:`CLIENT_LOCK` from here until they are done.
    """
    from toxiproxy import Toxiproxy

    _url, host, port = parse_url(url)
    with CLIENT_LOCK:
        Toxiproxy().update_api_consumer(host, port)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/version", timeout=1.0) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # Quiet by default: both servers log every proxy start and stop at info.
    env.setdefault("LOG_LEVEL", "warn")
    env.update(extra)
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    ToxiproxyHandle("", "", 0, "faultproxy", process).close()


def _start_binary(
    binary: str, timeout: float, log: Path | None = None, port: int | None = None
) -> ToxiproxyHandle:
    # toxiproxy-server does not report the port it bound, so choose one; if
    # another process takes it first, the server dies and we try another (unless the
    # port was chosen by the caller).
    last_error = "did not start"
    for _attempt in range(3 if port is None else 1):
        port_now = _free_port() if port is None else port
        url = f"http://127.0.0.1:{port_now}"
        with contextlib.ExitStack() as stack:
            out = subprocess.DEVNULL if log is None else stack.enter_context(open(log, "ab"))
            process = subprocess.Popen(
                [binary, "-host", "127.0.0.1", "-port", str(port_now)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=None if log is None else subprocess.STDOUT,
                env=_child_env({}),
                start_new_session=log is not None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _responds(url):
                return ToxiproxyHandle(url, "127.0.0.1", port_now, "toxiproxy-server", process)
            time.sleep(0.05)
        last_error = (
            f"exited with status {process.poll()}"
            if process.poll() is not None
            else (f"not answering on {url} after {timeout:.0f}s")
        )
        _stop(process)
    raise ToxiproxyUnavailable(f"{binary} {last_error}")


def _read_banner(process: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffer = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        data = os.read(fd, 4096)
        if not data:
            break
        buffer += data
    return buffer


def _start_faultproxy(timeout: float, log: Path | None = None, port: int = 0) -> ToxiproxyHandle:
    # Port 0 (unless the caller chose one) and the printed banner avoid the race of choosing a
    # port first.
    import minietcd

    root = str(Path(minietcd.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    extra = {"PYTHONPATH": pythonpath}
    if log is None:
        extra[_PARENT_PID_ENV] = str(os.getpid())
    with contextlib.ExitStack() as stack:
        stderr = None if log is None else stack.enter_context(open(log, "ab"))
        process = subprocess.Popen(
            [sys.executable, "-m", "minietcd.lab.faultproxy", "-host", "127.0.0.1", "-port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_child_env(extra),
            start_new_session=log is not None,
        )
    banner = _read_banner(process, timeout)
    match = _BANNER.search(banner)
    if match is None:
        _stop(process)
        raise ToxiproxyUnavailable(
            f"fault proxy did not report its address (exit status {process.poll()}, output {banner!r})"
        )
    url, host, port = parse_url(match.group(1).decode())
    return ToxiproxyHandle(url, host, port, "faultproxy", process)


def start_toxiproxy(
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = _STARTUP_TIMEOUT,
    detached_log: Path | None = None,
    port: int | None = None,
) -> ToxiproxyHandle:
    """Find or start a Toxiproxy as described in the module docstring.

    With ``detached_log`` a server started here outlives this process (own session, no
    orphan check, stderr to that file): for ``minietcd-lab up``, whose ``down`` stops it later.
    ``port``: the API port of a server started here (default: a free one).
    """
    env = os.environ if environ is None else environ
    configured = env.get(ENV_URL, "").strip()
    if configured:
        url, host, port = parse_url(configured)
        return ToxiproxyHandle(url, host, port, "env")
    binary = shutil.which(SERVER_BINARY, path=env.get("PATH"))
    if binary is not None:
        return _start_binary(binary, timeout, detached_log, port)
    return _start_faultproxy(timeout, detached_log, port or 0)


@contextlib.contextmanager
def toxiproxy_endpoint(*, environ: Mapping[str, str] | None = None) -> Iterator[str]:
    """The URL of a Toxiproxy to use, stopped again (if we started it) on exit."""
    with start_toxiproxy(environ=environ) as handle:
        yield handle.url


@contextlib.asynccontextmanager
async def async_toxiproxy_endpoint(*, environ: Mapping[str, str] | None = None) -> AsyncIterator[str]:
    """``toxiproxy_endpoint`` for async code: starting and stopping run off the loop."""
    import asyncio

    handle = await asyncio.to_thread(start_toxiproxy, environ=environ)
    try:
        yield handle.url
    finally:
        await asyncio.to_thread(handle.close)
