"""The member's HTTP side (on --listen-metrics-urls): what etcd serves, and a window on Raft.

* ``/health``, ``/version``, ``/metrics``: as etcd.
* ``/debug/vars``: etcd's expvar page (etcd serves it on the client URL): ``cmdline``,
  ``file_descriptor_limit`` and ``raft.status`` in etcd's shape. Go's ``memstats`` is left out.
* ``/debug/raft/events?after=SEQ&wait=SECONDS``: the member's explained Raft events numbered
  above SEQ as JSON (``{"events": [...], "last_seq": N}``), waiting up to ``wait`` seconds (at most
  30) for one when there is none; ``/debug/raft/events/stream`` sends the same as Server-Sent
  Events, for a browser's ``EventSource``. Both are minietcd's own (observe.py).
* ``/debug/raft/messages?after=SEQ``: the sampled trace of Raft messages the member sent
  (``{"messages": [...], "last_seq": N, "sampled_out": M, "started": T}``).
* ``/debug/raft/view?events_after=SEQ&messages_after=SEQ``: all a live picture of the member
  needs in one answer: role, term, vote, election timer, log tail (observe.raft_view_json), with
  the events and messages numbered above those given. Polled by ``minietcd-lab web``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections.abc import Awaitable, Callable, Collection

from prometheus_client import Counter, Gauge, generate_latest

from minietcd import ETCD_API_VERSION
from minietcd.api.etcdserverpb.rpc_pb2 import AlarmType
from minietcd.errors import MinietcdError
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.httpserver import HttpServer, Reply, Request, Response, json_response, text_response
from minietcd.server.member_metrics import MEMBER_METRICS
from minietcd.server.observe import raft_status_json, raft_view_json

DB_TOTAL_SIZE = Gauge(
    "etcd_mvcc_db_total_size_in_bytes",
    "Total size of the underlying database physically allocated in bytes.",
)

MAX_EVENT_WAIT = 30.0  # seconds a /debug/raft/events request may wait for an event
KEEP_ALIVE_SECONDS = 15.0  # an idle event stream sends a comment this often


#: etcd's /health counters (etcdhttp/metrics.go).
HEALTH_SUCCESS = Counter("etcd_server_health_success", "The total number of successful health checks")
HEALTH_FAILED = Counter("etcd_server_health_failures", "The total number of failed health checks")
#: How long the quorum read of a health check may take (etcd's QGET timeout).
HEALTH_READ_TIMEOUT = 1.0


async def check_health(server: EtcdServer, exclude: Collection[str] = ()) -> tuple[bool, str]:
    """(healthy, why not) as etcd 3.4's checkHealth decides: an alarm (unless its name is in
    ``exclude``, the ``?exclude=NOSPACE`` query), no leader, or a quorum read (etcd's QGET
    through Raft) that fails within a second. A member that stopped itself (fail-stop) is never
    healthy, in the moment before its listeners close. The reason is etcd 3.5's wording."""
    reason = ""
    if server.node.failure is not None:
        reason = "MEMBER FAILED"
    elif any(AlarmType.Name(alarm) not in exclude for _member, alarm in server.sm.alarms):
        reason = "NOSPACE" if any(a == AlarmType.NOSPACE for _m, a in server.sm.alarms) else "ALARM"
    elif server.leader == 0:
        reason = "RAFT NO LEADER"
    else:
        try:
            await asyncio.wait_for(server.read_barrier(), HEALTH_READ_TIMEOUT)
        except (TimeoutError, MinietcdError):
            reason = "QUORUM READ FAILED"
    (HEALTH_FAILED if reason else HEALTH_SUCCESS).inc()
    return not reason, reason


def method_not_allowed(allow: str) -> Response:
    """etcdhttp's answer to a method a page does not take (allowMethod): 405 with Allow."""
    resp = text_response(405, "Method Not Allowed")
    resp.headers["Allow"] = allow
    return resp


def version_body(server: EtcdServer) -> dict[str, str]:
    """etcd's /version: the server's version and the cluster's, once decided."""
    cluster = server.sm.membership.cluster_version or "not_decided"
    return {"etcdserver": ETCD_API_VERSION, "etcdcluster": cluster}


#: What Go's promhttp says its text exposition is (prometheus_client's own may be newer).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_response() -> Response:
    return Response(200, generate_latest(), METRICS_CONTENT_TYPE)


def debug_vars_body(server: EtcdServer) -> dict[str, object]:
    """etcd's expvar page, without Go's memstats."""
    return {
        "cmdline": sys.argv,
        "file_descriptor_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "raft.status": raft_status_json(server.node.rawnode.status()),
    }


def watch_db_size(server: EtcdServer) -> None:
    """Export this member's computed metrics (the latest member started in the process wins)."""
    # Computed when scraped: the store knows its size; nobody needs it between scrapes.
    DB_TOTAL_SIZE.set_function(server.sm.kv.size_bytes)
    MEMBER_METRICS.server = server


def make_metrics_server(server: EtcdServer) -> HttpServer:
    """The --listen-metrics-urls server."""
    watch_db_size(server)

    async def health(request: Request) -> Reply:
        ok, reason = await check_health(server, request.query.get("exclude", []))
        # etcd 3.4's decision; the body adds etcd 3.5's "reason" (minietcd-lab shows it).
        body = {"health": "true" if ok else "false", "reason": reason}
        return json_response(body, 200 if ok else 503)

    async def version(request: Request) -> Reply:
        return json_response(version_body(server))

    async def metrics(request: Request) -> Reply:
        return metrics_response()

    async def debug_vars(request: Request) -> Reply:
        return json_response(debug_vars_body(server))

    def _after(request: Request, name: str = "after") -> int:
        try:
            return max(0, int(request.query_get(name, "0")))
        except ValueError:
            raise _BadQuery(f"{name} must be a sequence number") from None

    async def raft_events(request: Request) -> Reply:
        after = _after(request)
        try:
            wait = min(MAX_EVENT_WAIT, max(0.0, float(request.query_get("wait", "0"))))
        except ValueError:
            raise _BadQuery("wait must be a number of seconds") from None
        log = server.node.events
        events = await log.wait_after(after, wait) if wait else log.after(after)
        return json_response({"events": [e.to_json() for e in events], "last_seq": log.last_seq})

    async def raft_event_stream(request: Request) -> Reply:
        seq = _after(request)
        resp = await request.stream({"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        log = server.node.events
        while not log.closed:  # or until the client goes away (the write fails)
            events = await log.wait_after(seq, KEEP_ALIVE_SECONDS)
            chunk = "".join(f"id: {e.seq}\nevent: raft\ndata: {json.dumps(e.to_json())}\n\n" for e in events)
            await resp.write((chunk or ": keep-alive\n\n").encode())
            if events:
                seq = events[-1].seq
        return resp

    def _messages(after: int) -> dict[str, object]:
        trace = server.node.messages
        return {
            "messages": [m.to_json() for m in trace.after(after)],
            "last_seq": trace.last_seq,
            "sampled_out": trace.sampled_out,
            "started": trace.started,
        }

    async def raft_messages(request: Request) -> Reply:
        return json_response(_messages(_after(request)))

    async def raft_view(request: Request) -> Reply:
        node = server.node
        body = raft_view_json(node.rawnode, node.tick_seconds)
        events = node.events.after(_after(request, "events_after"))
        body["events"] = [e.to_json() for e in events]
        body["last_event_seq"] = node.events.last_seq
        messages = _messages(_after(request, "messages_after"))
        body["messages"] = messages["messages"]
        body["last_message_seq"] = messages["last_seq"]
        body["sampled_out"] = messages["sampled_out"]
        body["started"] = messages["started"]
        return json_response(body)

    routes: dict[str, Callable[[Request], Awaitable[Reply]]] = {
        "/health": health,
        "/version": version,
        "/metrics": metrics,
        "/debug/vars": debug_vars,
        "/debug/raft/events": raft_events,
        "/debug/raft/events/stream": raft_event_stream,
        "/debug/raft/messages": raft_messages,
        "/debug/raft/view": raft_view,
    }

    async def dispatch(request: Request) -> Reply:
        handler = routes.get(request.path)
        if handler is None:
            return text_response(404, "404 page not found")
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed("GET")
        try:
            return await handler(request)
        except _BadQuery as e:
            return text_response(400, str(e))

    http = HttpServer(dispatch)
    # The server waits for answers in progress before the member stops: end the long polls
    # and event streams now.
    http.on_shutdown.append(server.node.events.close)
    return http


class _BadQuery(Exception):
    """A query parameter that is not what the page takes (answered 400 with the text)."""

