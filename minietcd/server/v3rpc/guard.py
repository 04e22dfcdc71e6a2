"""The one place where domain errors become gRPC statuses (design rule 6)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

import grpc

from minietcd.errors import MinietcdError
from minietcd.server.v3rpc.errors import to_grpc_status

T = TypeVar("T")
log = logging.getLogger("minietcd.v3rpc")


async def guarded(context: grpc.aio.ServicerContext, call: Awaitable[T]) -> T:
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
