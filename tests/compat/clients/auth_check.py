"""Log in with user and password through a third-party client and note what etcd answers.

    python tests/compat/clients/auth_check.py etcd3|aetcd --endpoint 127.0.0.1:2379

The cluster has auth on, user ``alice`` (password ``alicepw``) with READWRITE on ``/app/``, and
key ``/secret`` (tests/compat/test_python_clients.py sets it up). Prints one JSON object: for
each call, "ok" and what it returned, or the error's class name and message (the gRPC details,
which carry etcd's words). The test compares the objects of etcd and minietcd.
"""

from __future__ import annotations

import os
import sys

os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"  # etcd3 0.12.0 needs it (etcd3_client.py)

import asyncio
import importlib
import json
from collections.abc import Awaitable, Callable
from typing import Any


def _error(e: BaseException) -> dict[str, str]:
    details = getattr(e, "details", None)
    text = details() if callable(details) else str(e)
    cause = e.__cause__ or e.__context__
    if not text and cause is not None:
        inner = getattr(cause, "details", None)
        text = inner() if callable(inner) else str(cause)
    return {"error": type(e).__name__, "message": str(text)}


async def _call(fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    try:
        return {"ok": await fn()}
    except Exception as e:
        return _error(e)


async def run_aetcd(host: str, port: int) -> dict[str, Any]:
    aetcd: Any = importlib.import_module("aetcd")
    out: dict[str, Any] = {}
    c = aetcd.Client(host=host, port=port, username="alice", password="alicepw", timeout=20)
    out["login"] = await _call(lambda: _rev(c.connect()))
    out["put"] = await _call(lambda: _rev(c.put(b"/app/k", b"v")))
    out["get"] = await _call(lambda: _value(c.get(b"/app/k")))
    out["put_denied"] = await _call(lambda: _rev(c.put(b"/secret", b"x")))
    out["get_denied"] = await _call(lambda: _value(c.get(b"/secret")))
    await c.close()
    anonymous = aetcd.Client(host=host, port=port, timeout=20)
    out["anonymous"] = await _call(lambda: _value(anonymous.get(b"/app/k")))
    await anonymous.close()
    wrong = aetcd.Client(host=host, port=port, username="alice", password="wrong", timeout=20)
    out["wrong_password"] = await _call(lambda: _rev(wrong.connect()))
    await wrong.close()
    return out


async def _rev(aw: Awaitable[Any]) -> str:
    await aw
    return "done"


async def _value(aw: Awaitable[Any]) -> Any:
    r = await aw
    return None if r is None else bytes(r.value).decode()


def run_etcd3(host: str, port: int) -> dict[str, Any]:
    etcd3: Any = importlib.import_module("etcd3")
    out: dict[str, Any] = {}

    def call(fn: Callable[[], Any]) -> dict[str, Any]:
        try:
            return {"ok": fn()}
        except Exception as e:
            return _error(e)

    holder: dict[str, Any] = {}

    def login() -> str:
        holder["c"] = etcd3.client(host=host, port=port, user="alice", password="alicepw", timeout=20)
        return "done"

    out["login"] = call(login)
    c = holder["c"]
    out["put"] = call(lambda: c.put(b"/app/k", b"v") and "done")
    out["get"] = call(lambda: c.get(b"/app/k")[0].decode())
    out["put_denied"] = call(lambda: c.put(b"/secret", b"x") and "done")
    out["get_denied"] = call(lambda: c.get(b"/secret")[0])
    anonymous = etcd3.client(host=host, port=port, timeout=20)
    out["anonymous"] = call(lambda: anonymous.get(b"/app/k")[0])
    out["wrong_password"] = call(
        lambda: etcd3.client(host=host, port=port, user="alice", password="wrong", timeout=20) and "done"
    )
    return out


def main() -> int:
    lib, endpoint = sys.argv[1], sys.argv[sys.argv.index("--endpoint") + 1]
    host, port = endpoint.rsplit(":", 1)
    result = asyncio.run(run_aetcd(host, int(port))) if lib == "aetcd" else run_etcd3(host, int(port))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
