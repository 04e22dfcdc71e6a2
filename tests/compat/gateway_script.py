"""One HTTP script for a 1-member etcd 3.4 and a 1-member minietcd: every path of etcd's JSON
gateway (both streams included), errors, bad bodies, unknown paths and etcd's other HTTP pages.

:func:`run_script` sends each :class:`Step` to a client URL and returns what came back, reduced
by :func:`normalise` to what must be equal between two servers: the status, the content type,
whether the gRPC metadata header came, and the JSON with only what legitimately differs
replaced (member and cluster IDs, raft terms and indexes, ports, database sizes and hashes,
snapshot bytes). Revisions are kept: the same requests on a fresh member give the same ones.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

#: Keys whose values differ between two servers doing the same thing.
VARYING = {
    "cluster_id", "member_id", "raft_term", "leader", "raftIndex", "raftTerm", "raftAppliedIndex",
    "dbSize", "dbSizeInUse", "hash", "blob", "remaining_bytes", "cmdline", "file_descriptor_limit",
    "raft.status",
}  # fmt: skip
_PORT = re.compile(r"(127\.0\.0\.1|localhost):\d+")


@dataclass(frozen=True)
class Step:
    name: str
    path: str
    body: str | None = None
    method: str = "POST"
    #: Read this many lines of a stream, then hang up (None: read to the end).
    lines: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Compare only the status and content type (the body is the server's own: /metrics).
    status_only: bool = False
    #: Run only where minietcd has auth (server/api/auth.py): etcd checks a token auth or not.
    needs_auth: bool = False


def b64(s: str) -> str:
    import base64

    return base64.b64encode(s.encode()).decode()


FOO, BAR, BAZ, A, Z = b64("foo"), b64("bar"), b64("baz"), b64("a"), b64("z")
LEASE = "1000"  # explicit lease IDs: servers pick different ones
P = "POST"

SCRIPT: list[Step] = [
    Step("health", "/health", method="GET"),
    Step("health exclude", "/health?exclude=NOSPACE", method="GET"),
    Step("health post", "/health", "{}"),
    Step("version", "/version", method="GET"),
    Step("version post", "/version", "{}"),
    Step("metrics", "/metrics", method="GET", status_only=True),
    Step("debug vars", "/debug/vars", method="GET", status_only=True),
    Step("put (etcd's curl example)", "/v3/kv/put", f'{{"key": "{FOO}", "value": "{BAR}"}}'),
    Step("put prev_kv", "/v3/kv/put", f'{{"key": "{FOO}", "value": "{BAZ}", "prev_kv": true}}'),
    Step("put a", "/v3/kv/put", f'{{"key": "{A}", "value": "{A}"}}'),
    Step("put camel name", "/v3/kv/put", f'{{"key": "{b64("foo2")}", "value": "{BAR}", "prevKv": true}}'),
    Step("range", "/v3/kv/range", f'{{"key": "{FOO}"}}'),
    Step("range prefix", "/v3/kv/range", f'{{"key": "{A}", "range_end": "{Z}", "sort_order": "DESCEND"}}'),
    Step("range all keys only", "/v3/kv/range", '{"key": "AA==", "range_end": "AA==", "keys_only": true}'),
    Step("range count only", "/v3/kv/range", '{"key": "AA==", "range_end": "AA==", "count_only": true}'),
    Step(
        "range limit",
        "/v3/kv/range",
        f'{{"key": "{A}", "range_end": "{Z}", "limit": 1, "sortTarget": "KEY"}}',
    ),
    Step(
        "range quoted ints",
        "/v3/kv/range",
        f'{{"key": "{A}", "range_end": "{Z}", "limit": " 2", "revision": "3"}}',
    ),
    Step("range enum number", "/v3/kv/range", f'{{"key": "{A}", "range_end": "{Z}", "sort_order": 2}}'),
    Step("range missing", "/v3/kv/range", f'{{"key": "{b64("nope")}"}}'),
    Step("range serializable", "/v3/kv/range", f'{{"key": "{FOO}", "serializable": true}}'),
    Step(
        "range hasleader", "/v3/kv/range", f'{{"key": "{FOO}"}}', headers={"Grpc-Metadata-Hasleader": "true"}
    ),
    Step(
        "range bad token",
        "/v3/kv/range",
        f'{{"key": "{FOO}"}}',
        headers={"Authorization": "junk"},
        needs_auth=True,
    ),
    Step("range unknown fields", "/v3/kv/range", f'{{"key": "{FOO}", "nope": [1, {{}}], "KEY": 1}}'),
    Step("range trailing garbage", "/v3/kv/range", f'{{"key": "{FOO}"}} garbage'),
    Step("range two values", "/v3/kv/range", f'{{"key": "{FOO}"}}{{"key": "{A}"}}'),
    Step("range null", "/v3/kv/range", "null"),
    Step("range empty body", "/v3/kv/range", ""),
    Step("range null fields", "/v3/kv/range", f'{{"key": "{FOO}", "limit": null, "range_end": null}}'),
    Step("v3beta range", "/v3beta/kv/range", f'{{"key": "{FOO}"}}'),
    Step("v3alpha range", "/v3alpha/kv/range", f'{{"key": "{FOO}"}}'),
    Step("future revision", "/v3/kv/range", f'{{"key": "{FOO}", "revision": 100}}'),
    Step("empty key", "/v3/kv/put", '{"value": "YQ=="}'),
    Step("bad json", "/v3/kv/range", "{bad"),
    Step("bad json eof", "/v3/kv/range", f'{{"key": "{FOO}"'),
    Step("bad json comma", "/v3/kv/range", f'{{"key": "{FOO}",}}'),
    Step("bad json colon", "/v3/kv/range", f'{{"key" "{FOO}"}}'),
    Step("bad literal", "/v3/kv/range", f'{{"key": "{FOO}", "keys_only": tru}}'),
    Step("bad string escape", "/v3/kv/range", '{"key": "\\q"}'),
    Step("control char", "/v3/kv/range", '{"key": "a\tb"}'),
    Step("bad number", "/v3/kv/range", '{"key": "YQ==", "limit": -}'),
    Step("array body", "/v3/kv/range", "[]"),
    Step("string body", "/v3/kv/range", '"str"'),
    Step("number body", "/v3/kv/range", "5"),
    Step("bad base64", "/v3/kv/range", '{"key": "Zm9"}'),
    Step("bad base64 padding", "/v3/kv/range", '{"key": "Zm9v=="}'),
    Step("urlsafe base64", "/v3/kv/range", '{"key": "Zm9v_-"}'),
    Step("base64 newline", "/v3/kv/range", '{"key": "Zm9v\\n"}'),
    Step("number key", "/v3/kv/range", '{"key": 5}'),
    Step("array key", "/v3/kv/range", '{"key": [102, 111, 111]}'),
    Step("float limit", "/v3/kv/range", f'{{"key": "{FOO}", "limit": 5.5}}'),
    Step("quoted float limit", "/v3/kv/range", f'{{"key": "{FOO}", "limit": "5.5"}}'),
    Step("word limit", "/v3/kv/range", f'{{"key": "{FOO}", "limit": "abc"}}'),
    Step("empty quoted limit", "/v3/kv/range", f'{{"key": "{FOO}", "limit": ""}}'),
    Step("hex limit", "/v3/kv/range", f'{{"key": "{FOO}", "limit": "0x10"}}'),
    Step("exponent limit", "/v3/kv/range", f'{{"key": "{FOO}", "limit": 1e2}}'),
    Step("huge limit", "/v3/kv/range", f'{{"key": "{FOO}", "limit": 99999999999999999999}}'),
    Step("bool limit", "/v3/kv/range", f'{{"key": "{FOO}", "limit": true}}'),
    Step("object limit", "/v3/kv/range", f'{{"key": "{FOO}", "limit": {{}}}}'),
    Step("unknown enum", "/v3/kv/range", f'{{"key": "{FOO}", "sort_order": "NOPE"}}'),
    Step("bool enum", "/v3/kv/range", f'{{"key": "{FOO}", "sort_order": true}}'),
    Step("string bool", "/v3/kv/range", f'{{"key": "{FOO}", "serializable": "true"}}'),
    Step("number bool", "/v3/kv/range", f'{{"key": "{FOO}", "serializable": 1}}'),
    Step("negative uint64 lease", "/v3/lease/revoke", '{"ID": -1}'),
    Step("txn array expected", "/v3/kv/txn", '{"compare": {}}'),
    Step("txn object expected", "/v3/kv/txn", '{"compare": [5]}'),
    Step(
        "txn success",
        "/v3/kv/txn",
        json.dumps(
            {
                "compare": [{"key": FOO, "result": "EQUAL", "target": "VALUE", "value": BAZ}],
                "success": [
                    {"request_put": {"key": FOO, "value": b64("x")}},
                    {"request_range": {"key": FOO}},
                ],
                "failure": [{"request_range": {"key": FOO}}],
            }
        ),
    ),
    Step(
        "txn failure",
        "/v3/kv/txn",
        json.dumps(
            {
                "compare": [{"key": FOO, "target": "VERSION", "version": "100"}],
                "failure": [
                    {"request_range": {"key": FOO}},
                    {"request_delete_range": {"key": A, "prev_kv": True}},
                ],
            }
        ),
    ),
    Step(
        "txn duplicate key",
        "/v3/kv/txn",
        json.dumps({"success": [{"request_put": {"key": FOO}}, {"request_put": {"key": FOO}}]}),
    ),
    Step("deleterange prev_kv", "/v3/kv/deleterange", f'{{"key": "{b64("foo2")}", "prev_kv": true}}'),
    Step("deleterange nothing", "/v3/kv/deleterange", f'{{"key": "{b64("nope")}"}}'),
    Step("compaction", "/v3/kv/compaction", '{"revision": "3"}'),
    Step("compaction again", "/v3/kv/compaction", '{"revision": "3"}'),
    Step("range compacted", "/v3/kv/range", f'{{"key": "{FOO}", "revision": 2}}'),
    Step("lease grant", "/v3/lease/grant", f'{{"TTL": "60", "ID": "{LEASE}"}}'),
    Step("lease grant exists", "/v3/lease/grant", f'{{"TTL": 60, "ID": {LEASE}}}'),
    Step("lease grant 2", "/v3/lease/grant", '{"TTL": 120, "ID": "2000"}'),
    Step("put with lease", "/v3/kv/put", f'{{"key": "{b64("leased")}", "value": "{A}", "lease": "{LEASE}"}}'),
    Step("put unknown lease", "/v3/kv/put", f'{{"key": "{b64("leased")}", "value": "{A}", "lease": "9"}}'),
    Step("leases", "/v3/lease/leases", "{}"),
    Step("kv/lease/leases", "/v3/kv/lease/leases", "{}"),
    Step("timetolive missing", "/v3/lease/timetolive", '{"ID": "999"}'),
    Step("kv/lease/timetolive missing", "/v3/kv/lease/timetolive", '{"ID": "998", "keys": true}'),
    Step("keepalive", "/v3/lease/keepalive", f'{{"ID": "{LEASE}"}}'),
    Step("keepalive twice", "/v3/lease/keepalive", f'{{"ID": "{LEASE}"}} {{"ID": "2000"}}'),
    Step("keepalive unknown lease", "/v3/lease/keepalive", '{"ID": "77"}'),
    Step("keepalive empty", "/v3/lease/keepalive", ""),
    Step("keepalive bad first", "/v3/lease/keepalive", '{"ID": "x"}'),
    Step("keepalive bad second", "/v3/lease/keepalive", f'{{"ID": "{LEASE}"}} {{bad'),
    Step("revoke", "/v3/lease/revoke", '{"ID": "2000"}'),
    Step("revoke again", "/v3/lease/revoke", '{"ID": "2000"}'),
    Step("kv/lease/revoke missing", "/v3/kv/lease/revoke", '{"ID": "2000"}'),
    Step(
        "watch history",
        "/v3/watch",
        f'{{"create_request": {{"key": "{FOO}", "start_revision": "3", "prev_kv": true}}}}',
        lines=2,
    ),
    Step(
        "watch progress",
        "/v3/watch",
        f'{{"create_request": {{"key": "{b64("w")}"}}}} {{"progress_request": {{}}}}',
        lines=2,
    ),
    Step(
        "watch filters",
        "/v3/watch",
        f'{{"create_request": {{"key": "{FOO}", "start_revision": 3, "filters": ["NOPUT"]}}}}'
        f' {{"progress_request": {{}}}}',
        lines=2,
    ),
    Step(
        "watch compacted",
        "/v3/watch",
        f'{{"create_request": {{"key": "{FOO}", "start_revision": "1"}}}}',
        lines=2,
    ),
    Step(
        "watch range and id",
        "/v3/watch",
        f'{{"create_request": {{"key": "{A}", "range_end": "{Z}", "watch_id": "7", "start_revision": "4"}}}}',
        lines=2,
    ),
    Step("watch bad first", "/v3/watch", "{bad"),
    Step("watch bad enum", "/v3/watch", f'{{"create_request": {{"key": "{FOO}", "filters": ["NOPE"]}}}}'),
    Step("lock", "/v3/lock/lock", f'{{"name": "{b64("mylock")}", "lease": "{LEASE}"}}'),
    Step("unlock", "/v3/lock/unlock", f'{{"key": "{b64("mylock/3e8")}"}}'),
    Step("lock short path", "/v3/lock", f'{{"name": "{b64("mylock")}"}}'),
    Step(
        "campaign",
        "/v3/election/campaign",
        f'{{"name": "{b64("elec")}", "lease": "{LEASE}", "value": "{b64("v1")}"}}',
    ),
    Step("leader", "/v3/election/leader", f'{{"name": "{b64("elec")}"}}'),
    Step("leader none", "/v3/election/leader", f'{{"name": "{b64("none")}"}}'),
    Step("observe", "/v3/election/observe", f'{{"name": "{b64("elec")}"}}', lines=1),
    Step(
        "proclaim",
        "/v3/election/proclaim",
        json.dumps(
            {
                "leader": {"name": b64("elec"), "key": b64("elec/3e8"), "rev": "{rev}", "lease": LEASE},
                "value": b64("v2"),
            }
        ),
    ),
    Step(
        "proclaim not leader",
        "/v3/election/proclaim",
        json.dumps(
            {
                "leader": {"name": b64("elec"), "key": b64("elec/1"), "rev": "1", "lease": LEASE},
                "value": b64("v2"),
            }
        ),
    ),
    Step(
        "resign",
        "/v3/election/resign",
        json.dumps({"leader": {"name": b64("elec"), "key": b64("elec/3e8"), "rev": "{rev}", "lease": LEASE}}),
    ),
    Step("member list", "/v3/cluster/member/list", "{}"),
    Step(
        "member add learner",
        "/v3/cluster/member/add",
        '{"peerURLs": ["http://127.0.0.1:9"], "isLearner": true}',
    ),
    Step("member add bad url", "/v3/cluster/member/add", '{"peerURLs": ["bad"]}'),
    Step("member remove unknown", "/v3/cluster/member/remove", '{"ID": "5"}'),
    Step(
        "member update unknown",
        "/v3/cluster/member/update",
        '{"ID": "5", "peerURLs": ["http://127.0.0.1:8"]}',
    ),
    Step("member promote unknown", "/v3/cluster/member/promote", '{"ID": "5"}'),
    Step("status", "/v3/maintenance/status", "{}"),
    Step("alarm list", "/v3/maintenance/alarm", "{}"),
    Step("alarm get", "/v3/maintenance/alarm", '{"action": "GET"}'),
    Step("alarm deactivate", "/v3/maintenance/alarm", '{"action": "DEACTIVATE", "alarm": "NOSPACE"}'),
    Step("hash", "/v3/maintenance/hash", "{}"),
    Step("defragment", "/v3/maintenance/defragment", "{}"),
    Step("transfer leadership bad", "/v3/maintenance/transfer-leadership", '{"targetID": "5"}'),
    Step("snapshot bad body", "/v3/maintenance/snapshot", "{bad"),
    Step("snapshot", "/v3/maintenance/snapshot", "{}", lines=1),
    Step("delete lease", "/v3/lease/revoke", f'{{"ID": "{LEASE}"}}'),
    Step("range after revoke", "/v3/kv/range", '{"key": "AA==", "range_end": "AA==", "keys_only": true}'),
    Step("get on a gateway path", "/v3/kv/range", method="GET"),
    Step("put on a gateway path", "/v3/kv/range", "{}", method="PUT"),
    Step("unknown v3 path", "/v3/nothing", "{}"),
    Step("unknown v3 deep path", "/v3/kv/range/more", "{}"),
    Step("verb", "/v3/kv/range:verb", f'{{"key": "{FOO}"}}'),
    Step("empty verb", "/v3/kv/range:", f'{{"key": "{FOO}"}}'),
    Step("v3 root", "/v3/", "{}"),
    Step("v3 no slash", "/v3", "{}"),
    Step("v3 no slash get", "/v3", method="GET"),
    Step("unclean path", "//health", method="GET"),
    Step("unclean v3 path", "/v3//kv/range", f'{{"key": "{FOO}"}}'),
    Step("unclean path escaped in Location", "//x%0d%0aSet-Cookie:%20a/../b%20c!*(x)?q=1%202", method="GET"),
    Step("unknown path", "/nothing", "{}"),
    Step("root", "/", method="GET"),
    Step("options", "/v3/kv/put", method="OPTIONS"),
    Step("health slash", "/health/", method="GET"),
    Step("log level", "/config/local/log", '{"Level": "INFO"}', method="PUT"),
    Step("log level bad json", "/config/local/log", "{bad", method="PUT"),
    Step("log level unknown", "/config/local/log", '{"Level": "nope"}', method="PUT"),
    Step("log level key in lower case", "/config/local/log", '{"level": "n"}', method="PUT"),
    Step("log level get", "/config/local/log", method="GET"),
    Step("log level back to info", "/config/local/log", '{"Level": "info"}', method="PUT"),
]


def request(port: int, step: Step, timeout: float = 10.0) -> tuple[int, dict[str, str], list[bytes]]:
    """(status, headers, body lines) of one step against 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = step.body.encode() if step.body is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded", **step.headers}  # as curl -d sends
        conn.request(step.method, step.path, body=body, headers=headers)
        resp = conn.getresponse()
        head = {k.lower(): v for k, v in resp.getheaders()}
        head[":reason"] = resp.reason  # the status line's text ("Not Found")
        if step.lines is None:
            return resp.status, head, [resp.read()]
        lines: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(lines) < step.lines and time.monotonic() < deadline:
            line = resp.readline()
            if not line:
                break
            lines.append(line)
        return resp.status, head, lines
    finally:
        conn.close()


def normalise(value: Any) -> Any:
    """``value`` (decoded JSON) with what differs between two servers replaced."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in VARYING:
                out[k] = f"<{k}>"
            elif k == "members" or k == "member":
                out[k] = normalise_members(v)
            else:
                out[k] = normalise(v)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        return _PORT.sub(r"\1:<port>", value)
    return value


def normalise_members(v: Any) -> Any:
    """Member IDs are random (member add) or derived from ports: keep their presence only."""
    members = v if isinstance(v, list) else [v]
    out = []
    for m in members:
        m = normalise(m)
        if isinstance(m, dict) and "ID" in m:
            m["ID"] = "<id>"
        out.append(m)
    out.sort(key=lambda m: json.dumps(m, sort_keys=True))
    return out if isinstance(v, list) else out[0]


def outcome(port: int, step: Step, found: dict[str, str]) -> dict[str, Any]:
    """What one step gave, normalised; ``found`` carries values later steps use ({rev})."""
    for name, value in found.items():
        if step.body is not None and "{" + name + "}" in step.body:
            step = replace(step, body=step.body.replace("{" + name + "}", value))
    status, head, lines = request(port, step)
    if step.name == "campaign" and status == 200:
        found["rev"] = json.loads(lines[0])["leader"]["rev"]
    result: dict[str, Any] = {
        "status": status,
        "content-type": head.get("content-type"),
        "grpc-metadata": head.get("grpc-metadata-content-type"),
        "cors": head.get("access-control-allow-origin"),
        "location": head.get("location"),
        "allow": head.get("allow"),
        "reason": head.get(":reason"),
        # grpc-gateway declares the gRPC trailers it sends after the body of an error the
        # server answered (Trailer: Grpc-Trailer-Content-Type).
        "trailer": head.get("trailer"),
    }
    if step.status_only:
        return result
    body: list[Any] = []
    for raw in lines:
        for line in raw.splitlines() or [b""]:
            try:
                body.append(normalise(json.loads(line)))
            except ValueError:
                body.append(line.decode(errors="replace"))
    result["body"] = body
    return result


def run_script(port: int, *, auth: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """Every step's outcome (``auth=False``: without the steps that need auth)."""
    found: dict[str, str] = {}
    return [(step.name, outcome(port, step, found)) for step in SCRIPT if auth or not step.needs_auth]


#: etcd's wsproxy: (path, messages the client sends, messages to read). Run after SCRIPT.
WS_SCRIPT: list[tuple[str, list[str], int]] = [
    ("/v3/kv/put", [f'{{"key": "{b64("ws")}", "value": "{b64("1")}"}}'], 2),
    ("/v3/kv/range", [f'{{"key": "{b64("ws")}"}}'], 2),
    ("/v3/watch", [f'{{"create_request": {{"key": "{b64("ws")}", "start_revision": 1}}}}'], 2),
    ("/v3/lease/keepalive", ['{"ID": "77"}', '{"ID": "78"}'], 2),
    ("/v3/watch", ["{bad"], 2),
    ("/v3/kv/range", ["{bad"], 2),
    ("/v3/nothing", ["{}"], 2),
]


def run_ws_script(port: int) -> list[list[Any]]:
    """Each WS_SCRIPT step's messages (normalised JSON, or text; "<closed>" when it closed)."""
    import asyncio

    import aiohttp

    async def step(path: str, send: list[str], n: int) -> list[Any]:
        out: list[Any] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{port}{path}") as ws,
        ):
            for m in send:
                await ws.send_str(m)
            for _ in range(n):
                try:
                    msg = await asyncio.wait_for(ws.receive(), 5)
                except TimeoutError:
                    out.append("<no message>")
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    out.append("<closed>")
                    break
                try:
                    out.append(normalise(json.loads(msg.data)))
                except ValueError:
                    out.append(msg.data)
        return out

    async def run() -> list[list[Any]]:
        return [await step(*s) for s in WS_SCRIPT]

    return asyncio.run(run())
