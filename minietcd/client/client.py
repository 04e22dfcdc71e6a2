"""The :class:`Client`: one object for every etcd v3 call, with its connection life cycle."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from minietcd.client._connection import Connection, TLSConfig
from minietcd.client.auth import AuthMixin
from minietcd.client.cluster import ClusterMixin
from minietcd.client.kv import KVMixin
from minietcd.client.lease import LeaseMixin
from minietcd.client.maintenance import MaintenanceMixin
from minietcd.client.watch import WatchMixin

__all__ = ["Client"]

DEFAULT_ENDPOINTS = ("127.0.0.1:2379",)


class Client(KVMixin, WatchMixin, LeaseMixin, ClusterMixin, MaintenanceMixin, AuthMixin):
    """An asyncio client for etcd v3 (real etcd 3.4 or minietcd).

    ``endpoints``: ``host:port`` or ``http(s)://host:port`` of some or all members. Calls are
    spread over them in turn and fail over to the next one when a member is down (see the
    retry rule in ``docs/client.md``: reads are retried, writes only if never sent).

    ``timeout``: default deadline of each call in seconds (every method also takes
    ``timeout=``; ``math.inf`` means none). ``dial_timeout``: how long to try connecting to one
    endpoint before moving on. ``ca_file``/``cert_file``/``key_file``: TLS (``https://``
    endpoints, or any endpoint once one of them is given, or ``tls=True``); ``server_name``
    overrides the name checked in the server's certificate. ``username``/``password``: etcd
    authentication.

    Example::

        import asyncio
        from minietcd.client import Client

        async def main() -> None:
            async with Client(["127.0.0.1:2379", "127.0.0.1:22379"]) as c:
                await c.put("greeting", "hello")
                resp = await c.get("greeting")
                print(resp.kvs[0].value.decode())  # hello

        asyncio.run(main())
    """

    def __init__(
        self,
        endpoints: Sequence[str] | str = DEFAULT_ENDPOINTS,
        *,
        timeout: float | None = 5.0,
        dial_timeout: float = 2.0,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        server_name: str | None = None,
        tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        keepalive_time: float = 10.0,
        keepalive_timeout: float = 5.0,
        max_message_bytes: int = 2**31 - 1,
    ) -> None:
        eps = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        self._conn = Connection(
            eps,
            timeout=timeout,
            dial_timeout=dial_timeout,
            tls=TLSConfig(ca_file, cert_file, key_file, server_name, tls),
            keepalive_time=keepalive_time,
            keepalive_timeout=keepalive_timeout,
            username=username,
            password=password,
            max_message_bytes=max_message_bytes,
        )

    @property
    def endpoints(self) -> list[str]:
        """The endpoints as given."""
        return self._conn.endpoints

    async def login(self, *, timeout: float | None = None) -> None:
        """Log in now with ``username`` / ``password`` (otherwise the first call does): raises
        the server's error (e.g. AuthFailedError). Auth being off on the server is no error."""
        await self._conn.authenticate(timeout)

    async def close(self) -> None:
        """Close every connection; calls still waiting fail with ``ClientClosedError``."""
        await self._conn.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
