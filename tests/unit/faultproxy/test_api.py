"""The HTTP API, driven through toxiproxy-python, with raw HTTP for codes and exact JSON."""

from __future__ import annotations

import socket

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from minietcd.lab.faultproxy import VERSION, FaultProxyServer
from tests.unit.faultproxy.support import Api, Client, Upstream, call


async def test_version(toxiproxy: Toxiproxy, api: Api) -> None:
    assert await call(toxiproxy.running)
    raw = await call(toxiproxy.version)
    assert b'"version"' in raw
    status, body = await api.request("GET", "/version")
    assert status == 200
    assert body == {"version": VERSION}


async def test_create_list_get_destroy(toxiproxy: Toxiproxy, api: Api, echo: Upstream) -> None:
    proxy = await call(toxiproxy.create, upstream=echo.address, name="echo")
    # toxiproxy-python asks for 127.0.0.1:0; the answer carries the bound port.
    host, _, port = proxy.listen.rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) > 0
    assert proxy.enabled is True
    assert proxy.upstream == echo.address

    listed = await call(toxiproxy.proxies)
    assert set(listed) == {"echo"}
    assert listed["echo"].listen == proxy.listen

    status, body = await api.request("GET", "/proxies/echo")
    assert status == 200
    assert body == {
        "name": "echo",
        "listen": proxy.listen,
        "upstream": echo.address,
        "enabled": True,
        "toxics": [],
    }
    status, index = await api.request("GET", "/proxies")
    assert status == 200
    assert index == {"echo": body}

    assert await call(toxiproxy.destroy, proxy) is True
    assert await call(toxiproxy.get_proxy, "echo") is None
    with pytest.raises(NotFound):
        await call(proxy.destroy)
    status, body = await api.request("DELETE", "/proxies/echo")
    assert (status, body) == (404, {"error": "proxy not found", "status": 404})
    # A deleted proxy no longer listens.
    with pytest.raises(ConnectionRefusedError):
        await Client.connect(proxy.listen)


async def test_create_via_http_defaults_and_codes(api: Api, echo: Upstream) -> None:
    status, body = await api.request(
        "POST", "/proxies", {"name": "p", "listen": "127.0.0.1:0", "upstream": echo.address}
    )
    assert status == 201
    assert body["enabled"] is True
    assert not body["listen"].endswith(":0")

    status, body = await api.request(
        "POST", "/proxies", {"name": "p", "listen": "127.0.0.1:0", "upstream": echo.address}
    )
    assert (status, body) == (409, {"error": "proxy already exists", "status": 409})

    status, body = await api.request("POST", "/proxies", {"listen": "127.0.0.1:0", "upstream": "x:1"})
    assert (status, body) == (400, {"error": "missing required field: name", "status": 400})
    status, body = await api.request("POST", "/proxies", {"name": "q", "listen": "127.0.0.1:0"})
    assert (status, body) == (400, {"error": "missing required field: upstream", "status": 400})

    status, body = await api.request("POST", "/proxies", data=b"{not json")
    assert status == 400
    assert body["status"] == 400
    assert body["error"].startswith("bad request body: ")
    status, body = await api.request("POST", "/proxies", data=b"")
    assert (status, body) == (400, {"error": "bad request body: EOF", "status": 400})
    status, body = await api.request("POST", "/proxies", {"name": 5, "upstream": "x:1"})
    assert status == 400

    # Created disabled: listed, not listening, listen left as given.
    status, body = await api.request(
        "POST",
        "/proxies",
        {"name": "off", "listen": "127.0.0.1:0", "upstream": echo.address, "enabled": False},
    )
    assert status == 201
    assert body["enabled"] is False
    assert body["listen"] == "127.0.0.1:0"


async def test_listen_failure_is_500(api: Api, echo: Upstream) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        status, body = await api.request(
            "POST", "/proxies", {"name": "clash", "listen": address, "upstream": echo.address}
        )
    assert status == 500
    assert body["status"] == 500
    assert body["error"].startswith(f"listen tcp {address}")
    status, _ = await api.request("GET", "/proxies/clash")
    assert status == 404


async def test_update_to_a_taken_port_is_500_and_disables(api: Api, echo: Upstream) -> None:
    status, body = await api.request(
        "POST", "/proxies", {"name": "mv", "listen": "127.0.0.1:0", "upstream": echo.address}
    )
    assert status == 201
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        status, body = await api.request("PATCH", "/proxies/mv", {"listen": address})
        assert status == 500
        assert body["error"].startswith(f"listen tcp {address}")
    status, body = await api.request("GET", "/proxies/mv")
    assert (body["enabled"], body["listen"]) == (False, address)


async def test_toxiproxy_python_refuses_duplicate(toxiproxy: Toxiproxy, echo: Upstream) -> None:
    await call(toxiproxy.create, upstream=echo.address, name="dup")
    with pytest.raises(ProxyExists):
        await call(toxiproxy.create, upstream=echo.address, name="dup")


async def test_update_proxy(toxiproxy: Toxiproxy, api: Api, echo: Upstream) -> None:
    proxy = await call(toxiproxy.create, upstream=echo.address, name="u")
    await call(proxy.disable)
    status, body = await api.request("GET", "/proxies/u")
    assert body["enabled"] is False
    assert body["listen"] == proxy.listen  # the bound port is kept while disabled

    status, body = await api.request("PATCH", "/proxies/u", {"enabled": True})
    assert status == 200
    assert body["enabled"] is True
    assert body["listen"] == proxy.listen
    client = await Client.connect(proxy.listen)
    await client.roundtrip(b"back")
    client.close()

    other = await Upstream("echo").start()
    try:
        status, body = await api.request("POST", "/proxies/u", {"upstream": other.address})
        assert status == 200
        assert body["upstream"] == other.address
        assert body["enabled"] is True
        client = await Client.connect(body["listen"])
        await client.roundtrip(b"moved")
        client.close()
        assert other.accepted == 1
    finally:
        await other.close()

    status, body = await api.request("PATCH", "/proxies/nope", {"enabled": False})
    assert (status, body) == (404, {"error": "proxy not found", "status": 404})
    status, body = await api.request("POST", "/proxies/u", data=b"[1")
    assert status == 400


async def test_toxic_crud(toxiproxy: Toxiproxy, api: Api, echo: Upstream) -> None:
    proxy = await call(toxiproxy.create, upstream=echo.address, name="t")
    await call(proxy.add_toxic, type="latency", attributes={"latency": 100})
    toxics = await call(proxy.toxics)
    assert set(toxics) == {"latency_downstream"}
    toxic = toxics["latency_downstream"]
    assert (toxic.type, toxic.stream, toxic.toxicity) == ("latency", "downstream", 1)
    assert toxic.attributes == {"latency": 100, "jitter": 0}

    status, body = await api.request("GET", "/proxies/t/toxics")
    assert status == 200
    assert body == [
        {
            "attributes": {"latency": 100, "jitter": 0},
            "name": "latency_downstream",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1,
        }
    ]
    # Creating a toxic answers 200 in Toxiproxy, not 201.
    status, body = await api.request(
        "POST",
        "/proxies/t/toxics",
        {"type": "limit_data", "stream": "upstream", "toxicity": 0.5, "attributes": {"bytes": 9}},
    )
    assert status == 200
    assert body == {
        "attributes": {"bytes": 9},
        "name": "limit_data_upstream",
        "type": "limit_data",
        "stream": "upstream",
        "toxicity": 0.5,
    }
    # Upstream toxics are listed before downstream ones.
    status, body = await api.request("GET", "/proxies/t")
    assert [t["name"] for t in body["toxics"]] == ["limit_data_upstream", "latency_downstream"]

    # Updates merge attributes and may change toxicity, through POST or PATCH.
    status, body = await api.request(
        "POST", "/proxies/t/toxics/latency_downstream", {"attributes": {"jitter": 5}}
    )
    assert status == 200
    assert body["attributes"] == {"latency": 100, "jitter": 5}
    status, body = await api.request(
        "PATCH", "/proxies/t/toxics/latency_downstream", {"toxicity": 0.25, "type": "timeout"}
    )
    assert status == 200
    assert (body["type"], body["toxicity"], body["attributes"]["latency"]) == ("latency", 0.25, 100)
    status, body = await api.request("GET", "/proxies/t/toxics/latency_downstream")
    assert (status, body["toxicity"]) == (200, 0.25)

    await call(proxy.destroy_toxic, "latency_downstream")
    assert await call(proxy.get_toxic, "latency_downstream") is None
    with pytest.raises(NotFound):
        await call(proxy.destroy_toxic, "latency_downstream")
    status, body = await api.request("DELETE", "/proxies/t/toxics/limit_data_upstream")
    assert (status, body) == (204, None)


async def test_toxic_errors(toxiproxy: Toxiproxy, api: Api, echo: Upstream) -> None:
    proxy = await call(toxiproxy.create, upstream=echo.address, name="e")
    await call(proxy.add_toxic, type="timeout", name="t1", attributes={"timeout": 0})
    with pytest.raises(ProxyExists):
        await call(proxy.add_toxic, type="latency", name="t1")
    with pytest.raises(InvalidToxic):
        await call(proxy.add_toxic, type="no_such_toxic")

    async def create(body: object) -> tuple[int, object]:
        return await api.request("POST", "/proxies/e/toxics", body)

    assert await create({"name": "t1", "type": "latency"}) == (
        409,
        {"error": "toxic already exists", "status": 409},
    )
    assert await create({"type": "bogus"}) == (
        400,
        {"error": "invalid toxic type", "status": 400},
    )
    assert await create({"type": "latency", "stream": "sideways"}) == (
        400,
        {"error": "stream was invalid, can be either upstream or downstream", "status": 400},
    )
    status, body = await create({"type": "latency", "attributes": {"latency": "slow"}})
    assert status == 400
    assert isinstance(body, dict)
    assert str(body["error"]).startswith("bad request body: ")
    status, _ = await create({"type": "latency", "attributes": {"latency": 1.5}})
    assert status == 400
    status, _ = await api.request("POST", "/proxies/e/toxics", data=b"nope")
    assert status == 400

    assert await api.request("POST", "/proxies/none/toxics", {"type": "latency"}) == (
        404,
        {"error": "proxy not found", "status": 404},
    )
    assert await api.request("GET", "/proxies/e/toxics/none") == (
        404,
        {"error": "toxic not found", "status": 404},
    )
    assert await api.request("PATCH", "/proxies/e/toxics/none", {"toxicity": 1}) == (
        404,
        {"error": "toxic not found", "status": 404},
    )
    assert await api.request("DELETE", "/proxies/e/toxics/none") == (
        404,
        {"error": "toxic not found", "status": 404},
    )
    assert (await api.request("GET", "/proxies/none/toxics"))[0] == 404


async def test_populate(api: Api, echo: Upstream, server: FaultProxyServer) -> None:
    entries = [
        {"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address},
        {"name": "b", "listen": "127.0.0.1:0", "upstream": echo.address, "enabled": False},
    ]
    status, body = await api.request("POST", "/populate", entries)
    assert status == 201
    assert [p["name"] for p in body["proxies"]] == ["a", "b"]
    a = body["proxies"][0]
    assert a["enabled"] is True
    assert not a["listen"].endswith(":0")
    assert body["proxies"][1]["enabled"] is False

    # Same listen and upstream: kept as it is (its toxics too).
    status, _ = await api.request("POST", "/proxies/a/toxics", {"type": "latency"})
    assert status == 200
    status, body = await api.request(
        "POST", "/populate", [{"name": "a", "listen": a["listen"], "upstream": echo.address}]
    )
    assert status == 201
    assert body["proxies"][0]["listen"] == a["listen"]
    assert len(body["proxies"][0]["toxics"]) == 1

    # A different upstream replaces it.
    status, body = await api.request(
        "POST", "/populate", [{"name": "a", "listen": a["listen"], "upstream": "127.0.0.1:1"}]
    )
    assert status == 201
    assert body["proxies"][0]["upstream"] == "127.0.0.1:1"
    assert body["proxies"][0]["toxics"] == []

    # Every entry is validated before any is applied.
    status, body = await api.request(
        "POST",
        "/populate",
        [{"name": "c", "listen": "127.0.0.1:0", "upstream": echo.address}, {"name": "d"}],
    )
    assert (status, body) == (
        400,
        {"error": "missing required field: upstream at proxy 2", "status": 400},
    )
    assert set(server.proxies.proxies) == {"a", "b"}

    assert await api.request("POST", "/populate", []) == (201, {"proxies": None})
    status, _ = await api.request("POST", "/populate", {"name": "x"})
    assert status == 400


async def test_toxiproxy_python_populate(toxiproxy: Toxiproxy, echo: Upstream) -> None:
    created = await call(
        toxiproxy.populate,
        [{"name": "p1", "upstream": echo.address, "listen": "127.0.0.1:0"}],
    )
    assert [p.name for p in created] == ["p1"]
    client = await Client.connect(created[0].listen)
    await client.roundtrip(b"populated")
    client.close()


async def test_reset(toxiproxy: Toxiproxy, api: Api, echo: Upstream) -> None:
    one = await call(toxiproxy.create, upstream=echo.address, name="one")
    two = await call(toxiproxy.create, upstream=echo.address, name="two")
    await call(one.add_toxic, type="latency", attributes={"latency": 1000})
    await call(two.add_toxic, type="timeout", stream="upstream")
    await call(two.disable)

    assert await call(toxiproxy.reset) is True
    status, body = await api.request("GET", "/proxies")
    assert status == 200
    for name in ("one", "two"):
        assert body[name]["enabled"] is True
        assert body[name]["toxics"] == []
    client = await Client.connect(two.listen)
    assert await client.roundtrip(b"after reset") < 1.0
    client.close()
    status, body = await api.request("POST", "/reset")
    assert (status, body) == (204, None)


async def test_browsers_refused(api: Api) -> None:
    status, _ = await api.request("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert status == 403
