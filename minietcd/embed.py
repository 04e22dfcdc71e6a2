"""A minietcd member inside your own event loop: no subprocess (etcd's ``embed`` package).

::

    from minietcd.client import Client
    from minietcd.embed import Etcd

    async def test_my_app(tmp_path):
        async with Etcd(tmp_path / "etcd") as etcd:            # a one-member cluster, ready
            async with Client(etcd.endpoints) as client:
                await client.put("k", "v")
            # etcd.endpoints also serve etcdctl, etcd3, aetcd... (real gRPC on 127.0.0.1)

``Etcd`` starts the very member the ``minietcd`` command runs (``minietcd.server.main.Member``,
configured through ``parse_config`` from etcd's flags, exactly as the command line is) as a task
of the running loop, on free ports of 127.0.0.1, and returns once it logged "ready to serve
client requests". Leaving the block stops it as SIGTERM stops the command. ``flags`` are any of
etcd's flags, applied after the defaults, so they win (``["--auto-compaction-retention=1"]``,
your own ``--listen-client-urls``...); ``ETCD_*`` variables are ignored, as etcd's embed
ignores them. ``data_dir`` is kept, so the next ``Etcd`` on it restarts the same member with
its data.

Limits, and why:

* **One embedded member at a time per process.** A member's Prometheus metrics
  (``etcd_server_has_leader``, ``etcd_server_is_leader``, the proposal counters, the WAL fsync
  histogram...) live in the process-wide default registry, as etcd's do: two members in one
  process would both report (and overwrite) one set, so ``/metrics`` and anything watching it
  would be wrong. A second ``Etcd`` while one runs is refused (``ConfigError``); one after the
  other is fine. For several members, use the pytest plugin's process clusters.
* **No process faults.** The member shares your process: it cannot be SIGKILLed, paused or
  partitioned on its own. Fault tests need the process clusters (``minietcd_cluster``,
  docs/testing.md).
* **It shares your loop.** Blocking the loop (``time.sleep``, synchronous I/O) stalls the
  member too, as it would any asyncio server in the same loop; run blocking calls (and
  subprocesses such as etcdctl) without blocking it (``asyncio.to_thread``,
  ``asyncio.create_subprocess_exec``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from minietcd.errors import ConfigError
from minietcd.lab.ports import free_ports
from minietcd.server.config import Config, parse_config
from minietcd.server.main import Member

HOST = "127.0.0.1"
_running: Etcd | None = None  # the embedded member of this process (one at a time: see above)


class Etcd:
    """``async with Etcd(data_dir, ...) as etcd:`` a serving member (see the module docstring).

    ``name``: the member's name (``--name``); ``flags``: etcd's flags, applied last;
    ``start_timeout``: seconds to wait for "ready to serve client requests";
    ``stop_timeout``: seconds to wait for the member to stop."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        name: str = "default",
        flags: Sequence[str] = (),
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.name = name
        self.flags = list(flags)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.config: Config | None = None
        self._member: Member | None = None
        self._task: asyncio.Task[None] | None = None

    # --- what clients use ----------------------------------------------------------------

    def _cfg(self) -> Config:
        if self.config is None:
            raise ConfigError("the embedded member is not started: use `async with Etcd(...)`")
        return self.config

    @property
    def endpoints(self) -> list[str]:
        """The client URLs it advertises (``--advertise-client-urls``), e.g. for ``Client``."""
        return [str(u) for u in self._cfg().advertise_client_urls]

    @property
    def client_url(self) -> str:
        return self.endpoints[0]

    @property
    def peer_url(self) -> str:
        return str(self._cfg().initial_advertise_peer_urls[0])

    @property
    def metrics_url(self) -> str:
        """Where ``/health``, ``/metrics`` and ``/version`` are served."""
        return str(self._cfg().listen_metrics_urls[0])

    @property
    def member(self) -> Member:
        """The running member (its ``server``: the application API; for tests that look inside)."""
        if self._member is None:
            raise ConfigError("the embedded member is not started: use `async with Etcd(...)`")
        return self._member

    # --- life cycle ----------------------------------------------------------------------

    def _argv(self) -> list[str]:
        client, peer, metrics = free_ports(3)
        peer_url = f"http://{HOST}:{peer}"
        return [
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", f"http://{HOST}:{client}",
            "--advertise-client-urls", f"http://{HOST}:{client}",
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"{self.name}={peer_url}",
            "--listen-metrics-urls", f"http://{HOST}:{metrics}",
            *self.flags,
        ]  # fmt: skip

    async def start(self) -> Etcd:
        """Start the member and wait until it serves clients (what ``async with`` does)."""
        global _running
        if _running is not None:
            raise ConfigError(
                f"an embedded member ({_running.name}, {_running.data_dir}) already runs in this process: "
                "one at a time, since metrics are process-wide (minietcd.embed; for clusters use the "
                "pytest plugin's process fixtures)"
            )
        self.config = parse_config(self._argv(), {})  # etcd's flag rules; ETCD_* ignored as embed does
        self._member = Member(self.config)
        _running = self
        self._task = asyncio.create_task(self._member.run(), name=f"minietcd embedded member {self.name}")
        ready = asyncio.create_task(self._member.ready.wait())
        try:
            done, _ = await asyncio.wait(
                {self._task, ready}, timeout=self.start_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
        if self._task in done:  # it ended before it was ready: the reason is its exception
            await self.stop()
            raise ConfigError(f"the embedded member {self.name} stopped before it was ready")
        if not self._member.ready.is_set():
            await self.stop()
            raise ConfigError(
                f"the embedded member {self.name} was not ready after {self.start_timeout:.0f}s"
            )
        return self

    async def stop(self) -> None:
        """Stop the member (as SIGTERM stops the command) and wait for it; re-raise the error it
        stopped with, if any."""
        global _running
        task, member = self._task, self._member
        self._task = None
        try:
            if task is None or member is None:
                return
            member.stop_requested.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), self.stop_timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise ConfigError(
                    f"the embedded member {self.name} did not stop within {self.stop_timeout:.0f}s"
                ) from None
        finally:
            if _running is self:
                _running = None

    async def __aenter__(self) -> Etcd:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            await self.stop()
            return
        with contextlib.suppress(Exception):  # the block's own error is the one to see
            await self.stop()
