"""HTTP endpoints etcd serves: /health, /version and /metrics (on --listen-metrics-urls)."""

from __future__ import annotations

import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from minietcd import ETCD_API_VERSION
from minietcd.server.etcd_server import EtcdServer

DB_TOTAL_SIZE = Gauge(
    "etcd_mvcc_db_total_size_in_bytes",
    "Total size of the underlying database physically allocated in bytes.",
)


def make_app(server: EtcdServer) -> web.Application:
    # Computed when scraped: the store knows its size; nobody needs it between scrapes.
    DB_TOTAL_SIZE.set_function(server.sm.kv.size_bytes)

    async def health(request: web.Request) -> web.Response:
        # etcd: healthy when there is a leader and no alarm is raised.
        ok = server.leader != 0 and not server.sm.alarms
        reason = "" if ok else ("NOSPACE" if server.sm.alarms else "RAFT NO LEADER")
        body = {"health": "true" if ok else "false", "reason": reason}
        return web.Response(text=json.dumps(body), content_type="application/json", status=200 if ok else 503)

    async def version(request: web.Request) -> web.Response:
        cluster = server.sm.membership.cluster_version or "not_decided"
        body = {"etcdserver": ETCD_API_VERSION, "etcdcluster": cluster}
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def metrics(request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest())
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", metrics)
    return app
