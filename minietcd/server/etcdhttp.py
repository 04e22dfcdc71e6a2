"""HTTP on the client URLs, as etcd 3.4 serves it (``embed/serve.go``, ``etcdhttp/base.go``):

* the access controller in front of everything: ``/v3beta/`` is rewritten to ``/v3/``; on a
  plain (not TLS) connection a Host outside ``--host-whitelist`` gets etcd's 421; CORS headers
  as ``--cors`` allows; ``OPTIONS`` is answered 200 with nothing more;
* Go's ``http.ServeMux``: an unclean path (``//health``, ``/v3/kv/../kv/range``) and ``/v3`` are
  redirected (301) to their clean form, ``/v3/...`` goes to the JSON gateway (unless
  ``--enable-grpc-gateway=false``), ``/health``, ``/version``, ``/metrics`` and ``/debug/vars``
  to the handlers the metrics URLs share (server/http.py), ``PUT /config/local/log`` sets the
  log level (etcd 3.4's, deprecated in 3.5), anything else is ``404 page not found``.

``/health`` answers as etcd 3.4 does: ``{"health":"true"}``, or ``{"health":"false"}`` with 503
(an alarm not excluded by ``?exclude=``, no leader, or a quorum read failing within a second),
as plain text; only GET.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from minietcd.golang import split_host_port
from minietcd.server.api import Api
from minietcd.server.config import Config
from minietcd.server.etcd_server import EtcdServer
from minietcd.server.http import (
    check_health,
    debug_vars_body,
    method_not_allowed,
    metrics_response,
    version_body,
    watch_db_size,
)
from minietcd.server.httpserver import (
    TEXT_UTF8,
    HttpServer,
    Reply,
    Request,
    Response,
    json_response,
    text_response,
)
from minietcd.server.logsetup import NOTICE

if TYPE_CHECKING:
    from minietcd.server.gateway import Gateway

Handler = Callable[[Request], Awaitable[Reply]]
log = logging.getLogger("minietcd.server")

#: The gRPC server's limit over --max-request-bytes (etcd: grpcOverheadBytes).
GRPC_OVERHEAD: Final = 512 * 1024


#: What Go's path escaping leaves as it is besides letters, digits and "-_.~" (net/url's
#: shouldEscape in encodePath mode).
_PATH_SAFE: Final = "$&+,/:;=@"


def _cve_2018_5702(host: str) -> str:
    """etcd's 421 text for a Host outside --host-whitelist (embed/serve.go errCVE20185702)."""
    return f"""
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist {json.dumps(host)}

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
"""


def clean_path(p: str) -> str:
    """Go's http cleanPath: path.Clean, keeping a trailing slash."""
    if not p:
        return "/"
    if not p.startswith("/"):
        p = "/" + p
    np = posixpath.normpath(p)
    if np.startswith("//"):  # POSIX keeps a leading "//"; Go's path.Clean does not
        np = "/" + np.lstrip("/")
    if p.endswith("/") and np != "/":
        np += "/"
    return np


def _redirect(request: Request, path: str) -> Response:
    """Go's ServeMux redirect to ``path`` (decoded) with 301: the path escaped as Go's
    url.URL.String() escapes one, a body (and its type) only for GET."""
    location = quote(path, safe=_PATH_SAFE)
    if request.query_string:
        location += "?" + request.query_string
    resp = Response(301, headers={"Location": location})
    if request.method in ("GET", "HEAD"):
        resp.content_type = "text/html; charset=utf-8"
    if request.method == "GET":
        resp.body = f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
    return resp


class ClientApp:
    """etcd's client-URL HTTP handler over one member (see the module docstring)."""

    def __init__(self, server: EtcdServer, api: Api, cfg: Config) -> None:
        self.server = server
        self.api = api
        #: The gateway's limit on a request (grpc-go's), None with --enable-grpc-gateway=false.
        self.gateway_request_bytes = (
            cfg.max_request_bytes + GRPC_OVERHEAD if cfg.enable_grpc_gateway else None
        )
        self._gateway: Gateway | None = None
        self.cors = frozenset(cfg.cors)
        self.host_whitelist = frozenset(cfg.host_whitelist)
        self.basic: dict[str, Handler] = {
            "/health": self.health,
            "/version": self.version,
            "/metrics": self.metrics,
            "/debug/vars": self.debug_vars,
            "/config/local/log": self.log_level,
        }

    def http_server(self) -> HttpServer:
        watch_db_size(self.server)
        return HttpServer(self.dispatch, decorate=self._cors_headers)

    # -- etcd's accessController and Go's ServeMux ---------------------------------------------

    async def dispatch(self, request: Request) -> Reply:
        path = request.path
        if path.startswith("/v3beta/"):
            path = "/v3/" + path[len("/v3beta/") :]
        if not request.is_tls:
            try:
                host, _port = split_host_port(request.host)
            except ValueError:  # no port: the whole Host (Go's httputil.GetHostname)
                host = request.host
            if self.host_whitelist and "*" not in self.host_whitelist and host not in self.host_whitelist:
                return Response(421, _cve_2018_5702(host).encode(), TEXT_UTF8)
        if request.method == "OPTIONS":
            return Response(200)
        clean = clean_path(path)
        if clean == "/v3":
            return _redirect(request, "/v3/")
        if clean != path:
            return _redirect(request, clean)
        if path.startswith("/v3/") and self.gateway_request_bytes is not None:
            return await self.gateway().handle(request, path)
        handler = self.basic.get(path)
        if handler is None:
            return text_response(404, "404 page not found")
        return await handler(request)

    def gateway(self) -> Gateway:
        """The JSON gateway, made on the first request for it (a member that only answers
        health probes never loads its modules)."""
        if self._gateway is None:
            from minietcd.server.gateway import Gateway

            assert self.gateway_request_bytes is not None  # only asked when enabled
            self._gateway = Gateway(self.api, max_request_bytes=self.gateway_request_bytes)
        return self._gateway

    def _cors_headers(self, request: Request, headers: dict[str, str]) -> None:
        origin = "*" if not self.cors or "*" in self.cors else request.headers.get("Origin", "")
        if origin == "*" or origin in self.cors:
            headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS, PUT, DELETE"
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Headers"] = "accept, content-type, authorization"

    # -- etcdhttp's basic handlers ---------------------------------------------------------------

    async def health(self, request: Request) -> Reply:
        if request.method != "GET":
            return method_not_allowed("GET")
        ok, _reason = await check_health(self.server, request.query.get("exclude", []))
        if not ok:
            return text_response(503, '{"health":"false"}')
        return Response(200, b'{"health":"true"}', TEXT_UTF8)

    async def version(self, request: Request) -> Reply:
        if request.method != "GET":
            return method_not_allowed("GET")
        body = json.dumps(version_body(self.server), separators=(",", ":"))
        return Response(200, body.encode(), "application/json")

    async def metrics(self, request: Request) -> Reply:
        return metrics_response()

    async def log_level(self, request: Request) -> Reply:
        """etcd 3.4's PUT /config/local/log ``{"Level": "DEBUG"}``: the log level of the member."""
        if request.method != "PUT":
            return method_not_allowed("PUT")
        level = _log_level_of(await request.read())
        if level is None:
            return _json_message(400, "Invalid json body")
        found = _CAPNSLOG_LEVELS.get(level.upper())
        if found is None:
            return _json_message(400, f"Invalid log level {level}")
        name, value = found
        logging.getLogger().setLevel(value)
        log.log(NOTICE, "etcdserver/api/etcdhttp: globalLogLevel set to %s", json.dumps(name))
        return Response(204)

    async def debug_vars(self, request: Request) -> Reply:
        if request.method != "GET":
            return method_not_allowed("GET")
        return json_response(debug_vars_body(self.server))


#: capnslog's levels by name and initial (capnslog.ParseLevel), as Python logging levels.
_CAPNSLOG_LEVELS: Final = {
    "CRITICAL": ("CRITICAL", logging.CRITICAL), "C": ("CRITICAL", logging.CRITICAL),
    "ERROR": ("ERROR", logging.ERROR), "E": ("ERROR", logging.ERROR),
    "WARNING": ("WARNING", logging.WARNING), "W": ("WARNING", logging.WARNING),
    "NOTICE": ("NOTICE", NOTICE), "N": ("NOTICE", NOTICE),
    "INFO": ("INFO", logging.INFO), "I": ("INFO", logging.INFO),
    "DEBUG": ("DEBUG", logging.DEBUG), "D": ("DEBUG", logging.DEBUG),
    "TRACE": ("TRACE", logging.DEBUG), "T": ("TRACE", logging.DEBUG),
}  # fmt: skip


def _json_message(status: int, message: str) -> Response:
    """etcd's httptypes.HTTPError: ``{"message": ...}``."""
    return json_response({"message": message}, status, "application/json")


def _log_level_of(body: bytes) -> str | None:
    """The Level of etcd's ``{"Level": "debug"}`` body (Go's decoder: the key in any case), or
    None when the body is not that JSON."""
    # Go's decoder as the gateway has it (imported here: the gateway loads on first use).
    from minietcd.server.gateway.gojson import GoJSONError, value_end

    try:
        start = len(body) - len(body.lstrip())
        if start == len(body):
            return None
        value = json.loads(body[start : value_end(body, start)])
    except (GoJSONError, ValueError):
        return None
    if value is None:
        return ""
    if not isinstance(value, dict):
        return None
    level: object = ""
    for key, v in value.items():
        if key.lower() == "level":
            level = v
    return level if isinstance(level, str) else None


def make_client_server(server: EtcdServer, api: Api, cfg: Config) -> HttpServer:
    """The HTTP server every client URL serves HTTP with."""
    return ClientApp(server, api, cfg).http_server()
