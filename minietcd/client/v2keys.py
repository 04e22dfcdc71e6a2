"""The slice of etcd's v2 keys API (HTTP + JSON) that etcd 3.4's v2 discovery protocol uses.

etcd's discovery client (etcdserver/api/v2discovery/discovery.go, on top of client/keys.go)
and a discovery service (discovery.etcd.io, or ``minietcd-lab discovery serve``) talk in these
shapes; both sides of minietcd use this module so they agree byte for byte with etcd v2:

- a node: ``{"key": "/_etcd/registry/<token>/<id>", "value": "n1=http://10.0.0.1:2380",
  "modifiedIndex": 7, "createdIndex": 7}``; directories have ``"dir": true`` and, when listed,
  ``"nodes": [...]`` (no value). Children whose name starts with ``_`` are hidden from
  listings, as in the v2 store (that is how ``_config`` stays out of the member list);
- a response: ``{"action": "get" | "create" | "set" | "delete", "node": {...}, "prevNode":
  {...}}``, with the store's index in the ``X-Etcd-Index`` header;
- an error: ``{"errorCode": 100, "message": "Key not found", "cause": "/...", "index": 7}``
  (etcd's error/error.go codes and texts; the HTTP status is the one etcd v2 answers with).

Only what the protocol needs is here: no TTLs, no in-order keys, no compare-and-swap beyond
``prevExist=false``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ERROR_STATUS",
    "ERROR_TEXT",
    "ERR_EVENT_INDEX_CLEARED",
    "ERR_INVALID_FORM",
    "ERR_KEY_NOT_FOUND",
    "ERR_NODE_EXIST",
    "ERR_NOT_FILE",
    "ERR_RAFT_INTERNAL",
    "V2Error",
    "V2Node",
    "V2Response",
    "error_json",
    "parse_error",
    "parse_response",
    "response_json",
]

# etcd's v2 error codes (error/error.go) that the discovery protocol can meet.
ERR_KEY_NOT_FOUND: Final = 100
ERR_NOT_FILE: Final = 102
ERR_NODE_EXIST: Final = 105
ERR_INVALID_FORM: Final = 209
ERR_RAFT_INTERNAL: Final = 300
ERR_EVENT_INDEX_CLEARED: Final = 401

ERROR_TEXT: Final = {
    ERR_KEY_NOT_FOUND: "Key not found",
    ERR_NOT_FILE: "Not a file",
    ERR_NODE_EXIST: "Key already exists",
    ERR_INVALID_FORM: "Invalid form",
    ERR_RAFT_INTERNAL: "Raft Internal Error",
    ERR_EVENT_INDEX_CLEARED: "The event in requested index is outdated and cleared",
}
#: The HTTP status etcd v2 answers each error with (error.go ``StatusCode``).
ERROR_STATUS: Final = {
    ERR_KEY_NOT_FOUND: 404,
    ERR_NOT_FILE: 403,
    ERR_NODE_EXIST: 412,
    ERR_INVALID_FORM: 400,
    ERR_RAFT_INTERNAL: 500,
    ERR_EVENT_INDEX_CLEARED: 400,  # not in etcd's errorStatus map: its default, Bad Request
}


@dataclass(eq=False)
class V2Error(Exception):
    """An etcd v2 error response; ``str()`` is etcd's client.Error text ``code: message (cause) [index]``."""

    code: int
    message: str
    cause: str = ""
    index: int = 0

    def __str__(self) -> str:
        return f"{self.code}: {self.message} ({self.cause}) [{self.index}]"

    @classmethod
    def of(cls, code: int, cause: str, index: int) -> V2Error:
        return cls(code, ERROR_TEXT[code], cause, index)

    @property
    def http_status(self) -> int:
        return ERROR_STATUS.get(self.code, 500)


@dataclass(frozen=True, slots=True)
class V2Node:
    key: str
    value: str | None = None
    dir: bool = False
    created_index: int = 0
    modified_index: int = 0
    nodes: tuple[V2Node, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        # Field order as etcd's (store/node_extern.go): key, dir|value, nodes, modifiedIndex, createdIndex.
        out: dict[str, Any] = {"key": self.key}
        if self.dir:
            out["dir"] = True
        elif self.value is not None:
            out["value"] = self.value
        if self.nodes:
            out["nodes"] = [n.to_json() for n in self.nodes]
        out["modifiedIndex"] = self.modified_index
        out["createdIndex"] = self.created_index
        return out

    @classmethod
    def from_json(cls, obj: Any) -> V2Node:
        if not isinstance(obj, dict) or not isinstance(obj.get("key", ""), str):
            raise ValueError("not a v2 node")
        nodes = obj.get("nodes")
        value = obj.get("value")
        return cls(
            key=obj.get("key", ""),
            value=value if isinstance(value, str) else None,
            dir=bool(obj.get("dir", False)),
            created_index=int(obj.get("createdIndex", 0)),
            modified_index=int(obj.get("modifiedIndex", 0)),
            nodes=tuple(cls.from_json(n) for n in nodes) if isinstance(nodes, list) else None,
        )


@dataclass(frozen=True, slots=True)
class V2Response:
    action: str
    node: V2Node
    prev_node: V2Node | None = None
    #: The ``X-Etcd-Index`` header (0 if absent).
    index: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def response_json(resp: V2Response) -> bytes:
    out: dict[str, Any] = {"action": resp.action, "node": resp.node.to_json()}
    if resp.prev_node is not None:
        out["prevNode"] = resp.prev_node.to_json()
    return json.dumps(out, separators=(",", ":")).encode() + b"\n"  # Go's json.Encoder ends with one


def error_json(err: V2Error) -> bytes:
    obj = {"errorCode": err.code, "message": err.message, "cause": err.cause, "index": err.index}
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def parse_response(body: bytes, etcd_index: str | None) -> V2Response:
    """A 200/201 body (etcd's unmarshalSuccessfulKeysResponse); ValueError if it is not v2 JSON."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid json") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("action"), str):
        raise ValueError("invalid json")
    node = V2Node.from_json(obj.get("node") or {})
    prev = V2Node.from_json(obj["prevNode"]) if isinstance(obj.get("prevNode"), dict) else None
    index = int(etcd_index) if etcd_index and etcd_index.isdigit() else 0
    return V2Response(obj["action"], node, prev, index)


def parse_error(body: bytes) -> V2Error:
    """An error body (etcd's unmarshalFailedKeysResponse); ValueError if it is not v2 JSON."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid json") from None
    if not isinstance(obj, dict):
        raise ValueError("invalid json")
    return V2Error(
        int(obj.get("errorCode", 0)),
        str(obj.get("message", "")),
        str(obj.get("cause", "")),
        int(obj.get("index", 0)),
    )
