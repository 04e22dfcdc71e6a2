"""Fixtures: an in-process fault proxy that toxiproxy-python is pointed at, and upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer

from minietcd.lab.faultproxy import FaultProxyServer, start_server
from tests.unit.faultproxy.support import Api, Client, Upstream


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    Client.close_all()


@pytest.fixture
def _restore_api_consumer() -> Iterator[None]:
    # toxiproxy-python keeps its server address on a class: put it back.
    saved = (APIConsumer.host, APIConsumer.port)
    yield
    APIConsumer.host, APIConsumer.port = saved


@pytest.fixture
async def server(_restore_api_consumer: None) -> AsyncIterator[FaultProxyServer]:
    srv = await start_server("127.0.0.1", 0, seed=1)
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
def toxiproxy(server: FaultProxyServer) -> Toxiproxy:
    client = Toxiproxy()
    client.update_api_consumer(server.host, server.port)
    return client


@pytest.fixture
async def api(server: FaultProxyServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(server.url, session)


@pytest.fixture
async def echo() -> AsyncIterator[Upstream]:
    upstream = await Upstream("echo").start()
    try:
        yield upstream
    finally:
        await upstream.close()
