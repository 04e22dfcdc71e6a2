"""``minietcd-lab discovery serve``: a discovery service like discovery.etcd.io, for etcd 3.4's
``--discovery <URL>`` (and minietcd's), backed by an etcd v3 cluster (minietcd or etcd).

    GET /new?size=3            -> http://127.0.0.1:8087/<32 hex token> (plain text, no newline)
    GET /<token>/_config/size  -> the size, as an etcd v2 keys API node
    GET /<token>               -> the registered members (``?wait=true&waitIndex=N&recursive=true``
                                  long-polls for the next change)
    PUT /<token>/<member id>   -> register (``?prevExist=false``, form ``value=name=peerURL``)
    GET|DELETE /<token>/<id>   -> one registration (DELETE drops a stale one)
    GET /health                -> OK when the backing cluster answers

The token URLs answer the slice of etcd's v2 keys API that etcd's discovery client uses
(discovery.etcd.io forwards them to an etcd v2 store), with etcd v2's JSON, ``X-Etcd-Index``
header, error codes and statuses (``minietcd.client.v2keys``). The backing cluster only needs the
v3 API: the v2 path ``/_etcd/registry/<token>/<name>`` is stored as the v3 key of the same name,
and v2 indexes are v3 revisions (``createdIndex`` = create revision, ``modifiedIndex`` = mod
revision, ``X-Etcd-Index`` = the store revision), so "wait from index N" is a v3 watch from
revision N. As in the v2 store, names starting with ``_`` (``_config``) are hidden from
listings and from recursive watches. Not served: TTLs, in-order keys, ``prevValue`` /
``prevIndex`` compare-and-swap, PUT on the token itself (v2 answers "Not a file").
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from minietcd.client import Client, Compare, EventType, KeyValue, Op, WatchCompactedError, v2keys
from minietcd.client.v2keys import V2Error, V2Node, V2Response
from minietcd.errors import ClientError

__all__ = ["REGISTRY", "DiscoveryService", "make_app", "serve"]

log = logging.getLogger("minietcd.lab.discovery")

#: Where discovery.etcd.io keeps tokens (in etcd's v2 store; here as v3 keys).
REGISTRY: Final = "/_etcd/registry"
TOKEN_RE: Final = r"[a-f0-9]{32}"
#: discovery.etcd.io's default size when /new has none.
DEFAULT_SIZE: Final = 3
HOME_TEXT: Final = (
    "minietcd-lab discovery service: GET /new?size=N for a token URL, then start each member "
    "with --discovery <that URL> (see docs/discovery.md)\n"
)


def _hidden(rel: str) -> bool:
    """A path below a watched or listed directory that the v2 store hides (a ``_`` component)."""
    return any(part.startswith("_") for part in rel.split("/") if part)


def _node(kv: KeyValue) -> V2Node:
    value = kv.value.decode("utf-8", "replace")
    return V2Node(kv.key.decode(), value, False, kv.create_revision, kv.mod_revision)


def _tree(path: str, kvs: Iterable[KeyValue], recursive: bool) -> V2Node:
    """The directory node ``path`` listing ``kvs`` (all below it), as the v2 store lists it."""
    kvs = list(kvs)
    created = min(kv.create_revision for kv in kvs)  # the dir came with its first key
    children: dict[str, list[KeyValue]] = {}
    leaves: list[V2Node] = []
    for kv in kvs:
        rel = kv.key.decode()[len(path) + 1 :]
        head, sep, _ = rel.partition("/")
        if head.startswith("_"):
            continue
        if sep:
            children.setdefault(head, []).append(kv)
        else:
            leaves.append(_node(kv))
    nodes = list(leaves)
    for head, below in children.items():
        sub = _tree(f"{path}/{head}", below, recursive)
        nodes.append(sub if recursive else V2Node(sub.key, None, True, sub.created_index, sub.modified_index))
    nodes.sort(key=lambda n: n.key)
    return V2Node(path, None, True, created, created, tuple(nodes))


@dataclass(slots=True)
class DiscoveryService:
    """The token handlers, over a v3 client of the backing cluster."""

    client: Client
    prefix_url: str

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _reply(resp: V2Response, status: int = 200) -> web.Response:
        return web.Response(
            body=v2keys.response_json(resp), status=status, content_type="application/json",
            headers={"X-Etcd-Index": str(resp.index)},
        )  # fmt: skip

    @staticmethod
    def _error(err: V2Error) -> web.Response:
        return web.Response(
            body=v2keys.error_json(err), status=err.http_status, content_type="application/json",
            headers={"X-Etcd-Index": str(err.index)},
        )  # fmt: skip

    async def _below(self, path: str) -> tuple[list[KeyValue], int]:
        resp = await self.client.get(path + "/", prefix=True)
        return resp.kvs, resp.header.revision

    async def _missing(self, path: str, rev: int) -> V2Error:
        """Key not found, naming the first missing path component as the v2 store does."""
        token_dir = "/".join(path.split("/")[:4])  # /_etcd/registry/<token>
        kvs, rev = await self._below(token_dir)
        cause = path if kvs else token_dir
        return V2Error.of(v2keys.ERR_KEY_NOT_FOUND, cause, rev)

    # --- GET -------------------------------------------------------------------------------

    async def get(self, path: str, recursive: bool) -> web.StreamResponse:
        resp = await self.client.get(path)
        if resp.kvs:
            return self._reply(V2Response("get", _node(resp.kvs[0]), index=resp.header.revision))
        kvs, rev = await self._below(path)
        if not kvs:
            return self._error(await self._missing(path, rev))
        return self._reply(V2Response("get", _tree(path, kvs, recursive), index=rev))

    async def wait(
        self, request: web.Request, path: str, wait_index: int, recursive: bool
    ) -> web.StreamResponse:
        """The first change at ``wait_index`` or later (v2 ``?wait=true``), long-polled."""
        index = (await self.client.get(path, count_only=True)).header.revision
        watch = self.client.watch(path, prefix=recursive, start_revision=wait_index, prev_kv=True)
        try:
            try:
                await watch.start()
            except WatchCompactedError as e:
                cause = f"the requested history has been cleared [{e.compact_revision}/{wait_index}]"
                return self._error(V2Error.of(v2keys.ERR_EVENT_INDEX_CLEARED, cause, index))
            # Headers go out now, as etcd v2 sends them, so proxies see a live response.
            out = web.StreamResponse(headers={"Content-Type": "application/json", "X-Etcd-Index": str(index)})
            await out.prepare(request)
            async for batch in watch:
                for ev in batch.events:
                    key = ev.kv.key.decode("utf-8", "replace")
                    if recursive and not self._visible(path, key):
                        continue
                    await out.write(v2keys.response_json(self._event(ev.type, ev.kv, ev.prev_kv, key)))
                    await out.write_eof()
                    return out
            return out  # pragma: no cover - a watch only ends by raising
        finally:
            await watch.aclose()

    @staticmethod
    def _visible(path: str, key: str) -> bool:
        """Whether a recursive v2 watch on ``path`` reports a change of ``key``."""
        return key == path or (key.startswith(path + "/") and not _hidden(key[len(path) :]))

    @staticmethod
    def _event(kind: EventType, kv: KeyValue, prev: KeyValue | None, key: str) -> V2Response:
        prev_node = _node(prev) if prev is not None else None
        if kind is EventType.DELETE:
            created = prev.create_revision if prev is not None else kv.mod_revision
            return V2Response("delete", V2Node(key, None, False, created, kv.mod_revision), prev_node)
        return V2Response("create" if kv.version == 1 else "set", _node(kv), prev_node)

    # --- PUT / DELETE ----------------------------------------------------------------------

    async def put(self, path: str, value: str, prev_exist: str) -> web.StreamResponse:
        if prev_exist == "false":
            txn = self.client.txn().if_(Compare.create(path, "=", 0))
            resp = await txn.then(Op.put(path, value)).else_(Op.get(path)).commit()
            rev = resp.header.revision
            if not resp.succeeded:
                return self._error(V2Error.of(v2keys.ERR_NODE_EXIST, path, rev))
            return self._reply(V2Response("create", V2Node(path, value, False, rev, rev), index=rev), 201)
        if prev_exist == "true":
            resp = await (
                self.client.txn().if_(Compare.create(path, ">", 0)).then(Op.put(path, value, prev_kv=True))
            ).commit()
            if not resp.succeeded:
                return self._error(await self._missing(path, resp.header.revision))
            rev = resp.header.revision
            prev_kv = resp.responses[0].prev_kv  # type: ignore[union-attr]  # a put op answers a PutResponse
            assert prev_kv is not None
            node = V2Node(path, value, False, prev_kv.create_revision, rev)
            return self._reply(V2Response("update", node, _node(prev_kv), index=rev))
        put = await self.client.put(path, value, prev_kv=True)
        rev, prev = put.header.revision, put.prev_kv
        node = V2Node(path, value, False, prev.create_revision if prev else rev, rev)
        reply = V2Response("set", node, _node(prev) if prev else None, index=rev)
        return self._reply(reply, 200 if prev else 201)

    async def delete(self, path: str) -> web.StreamResponse:
        resp = await self.client.delete(path, prev_kv=True)
        if not resp.prev_kvs:
            return self._error(await self._missing(path, resp.header.revision))
        prev = resp.prev_kvs[0]
        rev = resp.header.revision
        node = V2Node(path, None, False, prev.create_revision, rev)
        return self._reply(V2Response("delete", node, _node(prev), index=rev))

    # --- routes ----------------------------------------------------------------------------

    async def handle_new(self, request: web.Request) -> web.StreamResponse:
        post = await request.post() if request.can_read_body else {}
        text = str(post.get("size") or request.query.get("size", ""))
        size = DEFAULT_SIZE
        if text:
            if not re.fullmatch(r"[+-]?[0-9]+", text):
                return web.Response(status=400, text=f'strconv.Atoi: parsing "{text}": invalid syntax\n')
            size = int(text)
            if size < 1:
                return web.Response(status=400, text=f"size must be a positive integer, not {size}\n")
        token = secrets.token_hex(16)
        await self.client.put(f"{REGISTRY}/{token}/_config/size", str(size))
        log.info("New cluster created %s (size %d)", token, size)
        return web.Response(text=f"{self.prefix_url.rstrip('/')}/{token}")

    async def handle_token(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        rest = request.path[len(token) + 1 :].strip("/")  # "", "<member id>" or "_config/size"
        path = posixpath.join(REGISTRY, token, rest).rstrip("/")
        q = request.query
        try:
            if request.method == "GET":
                recursive = q.get("recursive") == "true"
                if q.get("wait") == "true":
                    index = int(q.get("waitIndex") or 0) if (q.get("waitIndex") or "0").isdigit() else -1
                    if index < 0:
                        return self._error(V2Error.of(v2keys.ERR_INVALID_FORM, "Invalid waitIndex", 0))
                    return await self.wait(request, path, index, recursive)
                return await self.get(path, recursive)
            if not rest:
                return self._error(V2Error.of(v2keys.ERR_NOT_FILE, path, 0))
            if request.method == "PUT":
                form = await request.post()
                value = str(form.get("value", q.get("value", "")))
                return await self.put(path, value, q.get("prevExist", ""))
            return await self.delete(path)
        except ClientError as e:
            # discovery.etcd.io answers 500 when etcd is unreachable; etcd's client retries 5xx.
            return self._error(V2Error.of(v2keys.ERR_RAFT_INTERNAL, str(e), 0))

    async def handle_health(self, _request: web.Request) -> web.StreamResponse:
        try:
            await self.client.get("health", count_only=True, timeout=2.0)
        except ClientError as e:
            return web.Response(status=500, text=f"backing cluster unavailable: {e}\n")
        return web.Response(text="OK")

    async def handle_home(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(text=HOME_TEXT)


def make_app(service: DiscoveryService) -> web.Application:
    """discovery.etcd.io's routes (http/http.go): exact tokens, GET/PUT/DELETE as it allows."""
    app = web.Application()
    t = "{token:" + TOKEN_RE + "}"
    app.router.add_get("/", service.handle_home)
    app.router.add_route("*", "/new", service.handle_new)
    app.router.add_get("/health", service.handle_health)
    app.router.add_get(f"/{t}/_config/size", service.handle_token)
    for path in (f"/{t}", f"/{t}/"):
        app.router.add_route("GET", path, service.handle_token)
        app.router.add_route("PUT", path, service.handle_token)
    for method in ("GET", "PUT", "DELETE"):
        app.router.add_route(method, f"/{t}/{{rest:[^/]+}}", service.handle_token)
    return app


async def serve(
    listen: str, endpoints: list[str], prefix_url: str = "", *, ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None, client_options: dict[str, object] | None = None,
) -> None:  # fmt: skip
    """Serve on ``listen`` (``host:port``) until ``stop`` is set (or forever)."""
    host, _, port = listen.rpartition(":")
    prefix = prefix_url or f"http://{listen}"
    async with Client(endpoints, **(client_options or {})) as client:  # type: ignore[arg-type]  # TLS options from the CLI, checked there
        runner = web.AppRunner(make_app(DiscoveryService(client, prefix)), handler_cancellation=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, host.strip("[]") or None, int(port)).start()
            log.info("discovery server started with etcd %s and host %r", ",".join(endpoints), prefix)
            log.info("discovery serving on %s", listen)
            if ready is not None:
                ready.set()
            await (stop.wait() if stop is not None else asyncio.Event().wait())
        finally:
            await runner.cleanup()
