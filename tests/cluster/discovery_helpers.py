"""What the discovery tests share: members started without the static bootstrap flags, and
waits on their logs and exits (every wait polls against a deadline)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.cluster.harness import ClusterError, ProcessCluster, clean_env

_STATIC_BOOTSTRAP_FLAGS = ("--initial-cluster", "--initial-cluster-token", "--initial-cluster-state")


class DiscoveryCluster(ProcessCluster):
    """Members started like ProcessCluster's but without the static bootstrap flags
    (``--initial-cluster*``): they get their discovery flags (``--discovery``,
    ``--discovery-srv``, ``--discovery-endpoints``...) through ``extra_flags`` instead.
    ``binaries`` starts some members with another server (``{index: etcd_binary()}``)."""

    binaries: dict[int, Sequence[str]] | None = None  # set after construction
    member_flags: dict[int, list[str]] | None = None  # more flags for some members

    def command(self, i: int) -> list[str]:
        binary = (self.binaries or {}).get(i, self.binary)
        return [*binary, *self.flags(i)]

    def flags(self, i: int) -> list[str]:
        out: list[str] = []
        args = iter(super().flags(i))
        for flag in args:
            if flag in _STATIC_BOOTSTRAP_FLAGS:
                next(args)  # and its value
                continue
            out.append(flag)
        return out + (self.member_flags or {}).get(i, [])


def member_log(c: ProcessCluster, i: int) -> str:
    return c.members[i].log_path.read_text(errors="replace")


def wait_for_log(c: ProcessCluster, i: int, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in member_log(c, i):
        proc = c.members[i].proc
        if proc is not None and proc.poll() is not None:
            raise ClusterError(
                f"{c.members[i].name} exited {proc.returncode} before logging {text!r}\n{c.log_tails()}"
            )
        if time.monotonic() >= deadline:
            raise ClusterError(f"{c.members[i].name} did not log {text!r} within {timeout}s\n{c.log_tails()}")
        time.sleep(0.05)


def wait_exit(c: ProcessCluster, i: int, timeout: float = 60.0) -> int:
    proc = c.members[i].proc
    assert proc is not None
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            raise ClusterError(f"{c.members[i].name} still running after {timeout}s\n{c.log_tails()}")
        time.sleep(0.05)
    return proc.returncode


def http(
    method: str, url: str, data: bytes | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one HTTP request; error statuses are returned, not raised."""
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Service:
    """One long-running helper process (a discovery service, a DNS server) in its own process
    group, its output in ``log_path``; killed (the whole group) by :meth:`close`."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=clean_env(env), start_new_session=True,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_http_ok(self, url: str, timeout: float = 30.0) -> None:
        """Poll ``url`` until it answers 200; ClusterError (with the log) if the process exits
        or the deadline passes."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            if self.proc.poll() is not None:
                raise ClusterError(f"{self.argv[0]} exited {self.proc.returncode}:\n{self.log()}")
            try:
                status, _, body = http("GET", url, timeout=2.0)
                if status == 200:
                    return
                last = f"{status} {body[:200]!r}"
            except OSError as e:
                last = str(e)
            if time.monotonic() >= deadline:
                raise ClusterError(f"{url} not ready after {timeout}s ({last}):\n{self.log()}")
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
