"""The HTTP face of a member: etcd 3.4's JSON gateway (grpc-gateway v1) over the application API.

``POST /v3/kv/put {"key": "Zm9v", "value": "YmFy"}`` and every other path etcd 3.4's gateway
serves (:mod:`.routes`, one row per path) call the same API methods the gRPC face calls, with a
:class:`~minietcd.server.api.RequestContext` built from the request's headers; the answers are
grpc-gateway's JSON (:mod:`.jsonpb`, over protobuf's ``json_format``), its errors and HTTP
statuses (:mod:`.status`, the one error table), Go's JSON error texts (:mod:`.gojson`). Serving
over the member's HTTP server (:mod:`minietcd.server.httpserver`) is :mod:`.handler`. Like the
gRPC face, this package imports only the API, the error tree and the generated messages
(tests/test_layers.py).

Where it is served (the client URLs, etcd 3.5's ``--listen-client-http-urls``) and what else
those URLs answer (``/health``, ``/version``, ``/metrics``...) is ``server/http.py``'s business.
"""

from __future__ import annotations

from minietcd.server.gateway.handler import Gateway
from minietcd.server.gateway.routes import ROUTES, Route

__all__ = ["ROUTES", "Gateway", "Route"]
