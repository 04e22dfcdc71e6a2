"""What every servicer of the gRPC face shares: the request context read from the call, and the
one place where the application API's typed errors become gRPC statuses (DESIGN rule 6)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import grpc

from minietcd.errors import MinietcdError
from minietcd.server.api import RequestContext
from minietcd.server.v3rpc.errors import to_grpc_status

Req = TypeVar("Req")
Resp = TypeVar("Resp")
log = logging.getLogger("minietcd.v3rpc")

#: etcd's metadata keys (rpctypes/md.go, metadatafields.go).
REQUIRE_LEADER_KEY = "hasleader"
TOKEN_KEY = "token"


def request_context(context: grpc.aio.ServicerContext) -> RequestContext:
    """What the call says beyond its message: etcd's ``hasleader`` and ``token`` metadata and the
    verified client certificate's Common Name (not the peer's address: nothing reads it, and
    asking grpc for it costs every call)."""
    requires_leader, token = False, ""
    for k, v in context.invocation_metadata() or ():
        if k == REQUIRE_LEADER_KEY:
            requires_leader = requires_leader or v == "true"
        elif k == TOKEN_KEY and isinstance(v, str):
            token = token or v
    cn = (context.auth_context() or {}).get("x509_common_name") or [b""]
    return RequestContext(
        requires_leader=requires_leader,
        auth_token=token,
        client_cn=cn[0].decode(errors="replace"),
    )


async def unary(
    context: grpc.aio.ServicerContext,
    method: Callable[[RequestContext, Req], Awaitable[Resp]],
    request: Req,
) -> Resp:
    """Serve a unary RPC by one application API method."""
    return await guarded(context, method(request_context(context), request))


async def guarded(context: grpc.aio.ServicerContext, call: Awaitable[Resp]) -> Resp:
    """Await ``call``; turn a MinietcdError into etcd's code and message. An unexpected error
    is logged with its traceback here and reaches the client as one line, never a crash."""
    try:
        return await call
    except MinietcdError as e:
        code, msg = to_grpc_status(e)
        await context.abort(code, msg)
    except (grpc.aio.AbortError, TimeoutError):
        raise
    except Exception as e:
        log.exception("v3rpc: unexpected error")
        code, msg = to_grpc_status(e)
        await context.abort(code, msg)
    raise AssertionError("unreachable")  # context.abort always raises


async def streamed(
    context: grpc.aio.ServicerContext, responses: AsyncGenerator[Resp, None]
) -> AsyncGenerator[Resp, None]:
    """Send ``responses`` (closed when the RPC ends); a MinietcdError ends the stream with
    etcd's code and message. Other errors pass (the decode guard answers an undecodable request
    message in a request stream)."""
    try:
        async with contextlib.aclosing(responses):
            async for resp in responses:
                yield resp
    except MinietcdError as e:
        code, msg = to_grpc_status(e)
        await context.abort(code, msg)
