"""Layers that hold: no import crosses a layer the wrong way. Checked on the source, by AST.

minietcd is built in layers, bottom to top (README "Architecture"):

    minietcd.errors, minietcd.golang    leaves: the exception tree, Go's text rules
    minietcd.api                        generated protobuf (etcd's wire API, our peer protocol)
    minietcd.raft                       the pure Raft core
    minietcd.wire                       core types <-> peer protocol
    minietcd.storage                    WAL, snapshot files, the core's durable Storage
    minietcd.mvcc, minietcd.lease       the applied state machine
    minietcd.server                     the member process, itself in layers:
      server.v3rpc, server.gateway        faces: adapters of the application API (gRPC, HTTP/JSON)
      server.api                          the application API (one method per operation)
      server.etcd_server, raft_node, apply*   what the API drives: proposals, reads, the state machine
      server.auth                         users, roles, permissions, tokens (driven by apply and the API)
    minietcd.etcdutl                    offline work on a member's files (snapshot restore)
    minietcd.client, minietcd.bench     talk to any etcd over its gRPC API
    minietcd.lab                        runs members as processes or containers, from outside
    minietcdctl                         the etcdctl work-alike

A rule names the modules it is about and either the only project modules they may import
(``only``; their own package is always allowed) or the ones they must never import
(``never``). Every import counts: at module level or inside a function, under
``TYPE_CHECKING`` or not, relative, or through ``importlib.import_module("...")``.

To add a rule, append a :class:`Rule` to :data:`RULES` (one line per rule, with its reason);
the checks below pick it up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Hand-written code whose imports are checked (minietcd/api is generated from proto/).
PACKAGES = ("minietcd", "minietcdctl")
GENERATED = ("minietcd.api",)
PROJECT = ("minietcd", "minietcdctl")

#: Everything below the member process: what these import must never reach up into it.
_BELOW_SERVER = ("minietcd.storage", "minietcd.mvcc", "minietcd.lease", "minietcd.wire")
_ABOVE_SERVER = ("minietcd.etcdutl", "minietcd.lab", "minietcd.bench", "minietcdctl")
#: The faces of a member: each adapts a transport to the application API (DESIGN rule 6).
_GRPC_FACE = ("minietcd.server.v3rpc",)
_GATEWAY_FACE = ("minietcd.server.gateway",)
_FACES = (*_GRPC_FACE, *_GATEWAY_FACE)
#: Edge-only helpers a face may use besides the API: how deep a Txn may be parsed (the decode
#: guard parses requests exactly as apply will, so it must share the rule), and the gRPC
#: servers' call counts every face keeps (go-grpc-prometheus's metrics).
_FACE_EDGE = ("minietcd.server.nesting", "minietcd.server.rpcmetrics")
#: What the application API drives: these never import the API or a face.
_BELOW_API = (
    "minietcd.server.etcd_server", "minietcd.server.raft_node", "minietcd.server.apply",
    "minietcd.server.apply_kv", "minietcd.server.apply_auth", "minietcd.server.auth",
    "minietcd.server.membership", "minietcd.server.transport", "minietcd.server.peer_rpc",
)  # fmt: skip
_SERVER_INTERNALS = (
    "minietcd.server", "minietcd.raft", "minietcd.storage", "minietcd.mvcc", "minietcd.lease",
    "minietcd.wire",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rule:
    """``modules`` (package or module prefixes) may import only ``only``, and never ``never``."""

    name: str
    modules: tuple[str, ...]
    why: str
    only: tuple[str, ...] | None = None
    never: tuple[str, ...] = ()


RULES: list[Rule] = [
    Rule("leaves", ("minietcd.errors", "minietcd.golang"), only=(),
         why="the exception tree and Go's text rules are leaves every layer may use"),
    Rule("raft core", ("minietcd.raft",), only=("minietcd.errors",),
         why="the Raft core is pure: it imports only itself and the exception tree (DESIGN rule 1)"),
    Rule("below the server", _BELOW_SERVER, never=("minietcd.server", "minietcd.client", *_ABOVE_SERVER),
         why="storage and the state machine sit below the server; the server wires them up"),
    Rule("server", ("minietcd.server",), never=_ABOVE_SERVER,
         why="the member process never depends on the tools that run or inspect it"),
    Rule("client", ("minietcd.client", "minietcd.bench"),
         only=("minietcd.api", "minietcd.errors", "minietcd.golang", "minietcd.client"),
         why="the client library and load tools speak etcd's gRPC API to any etcd, ours or the real one"),
    Rule("lab", ("minietcd.lab",), never=(*_SERVER_INTERNALS, "minietcd.etcdutl", "minietcdctl"),
         why="the lab drives members from outside, through the API and their processes; it computes "
         "member IDs from its own copy of etcd's rule (minietcd/lab/ids.py)"),
    Rule("etcdutl", ("minietcd.etcdutl",), never=("minietcd.lab", "minietcd.bench", "minietcdctl"),
         why="offline tools use the server's code, not the tools built on top of them"),
    Rule("minietcdctl", ("minietcdctl",), never=_SERVER_INTERNALS,
         why="the CLI talks to members through minietcd.client; offline work goes through etcdutl"),
    Rule("gRPC face", _GRPC_FACE,
         only=("minietcd.api", "minietcd.errors", "minietcd.server.api", *_FACE_EDGE),
         why="a face is an adapter: it calls the application API (minietcd.server.api) and maps its typed "
         "errors; it never touches the state machine, the Raft node, mvcc or storage (DESIGN rule 6)"),
    Rule("gateway face", _GATEWAY_FACE,
         only=("minietcd.api", "minietcd.errors", "minietcd.golang", "minietcd.server.api",
               "minietcd.server.rpcmetrics", "minietcd.server.httpserver"),
         why="the HTTP/JSON gateway is a face like the gRPC one: it calls the application API and maps its "
         "typed errors (Go's quoting from the leaf minietcd.golang), served by the member's HTTP server; "
         "never the state machine, the Raft node, mvcc, storage, or the gRPC face"),
    Rule("HTTP server", ("minietcd.server.httpserver",), only=(),
         why="the member's HTTP/1.1 server is plumbing under the HTTP faces, as a library would be: it "
         "knows no etcd and imports nothing of the project"),
    Rule("gRPC engine", ("minietcd.server.h2grpc",), only=(),
         why="the client port's gRPC over HTTP/2 is plumbing under the gRPC face, as grpcio's server is: it "
         "serves whatever method table it is given and imports nothing of the project"),
    Rule("application API", ("minietcd.server.api",), never=(*_FACES, "minietcd.server.main"),
         why="the application API sits below every face and knows none of them"),
    Rule("below the API", _BELOW_API, never=("minietcd.server.api", *_FACES),
         why="the Raft node, EtcdServer and the state machine are what the API calls, never the reverse; "
         "the apply layer raises domain errors and knows no face"),
    # More rules go here.
]  # fmt: skip


# -- reading imports -------------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            name = _module_name(path)
            if not _under(name, GENERATED):
                out[name] = path
    return out


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def imports(source: str, module: str, known: set[str], is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in ``source``, relative ones resolved.

    ``from pkg import name`` imports ``pkg.name`` where that is one of the ``known`` modules,
    else (a name defined in ``pkg``) ``pkg`` itself.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: count packages up from this module
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1 if is_package else node.level)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if sub in known else base
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def violations(rule: Rule, module: str, source: str, known: set[str], is_package: bool = False) -> list[str]:
    """Every import of ``module`` that breaks ``rule``, as ``module:line: imports X``."""
    out: list[str] = []
    for line, target in imports(source, module, known, is_package):
        if not _under(target, PROJECT) or _under(target, rule.modules):
            continue
        if (rule.only is not None and not _under(target, rule.only)) or _under(target, rule.never):
            out.append(f"{module}:{line}: imports {target}")
    return list(dict.fromkeys(out))  # one line per import, not per imported name


# -- the rules hold --------------------------------------------------------------------------------

SOURCES = _sources()
KNOWN = set(SOURCES)


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_layer_rule_holds(rule: Rule) -> None:
    modules = [m for m in SOURCES if _under(m, rule.modules)]
    assert modules, f"rule {rule.name!r} is about no module: {rule.modules}"
    found: list[str] = []
    for m in modules:
        path = SOURCES[m]
        found += violations(rule, m, path.read_text(), KNOWN, path.name == "__init__.py")
    assert not found, f"{rule.name}: {rule.why}\n" + "\n".join(found)


def test_rules_name_real_packages() -> None:
    named = {p for r in RULES for p in (*r.modules, *(r.only or ()), *r.never)}
    missing = sorted(p for p in named if not any(_under(m, (p,)) for m in KNOWN | set(GENERATED)))
    assert not missing, f"rules name packages that do not exist: {missing}"


# -- the checker itself catches what it should ---------------------------------------------------

_RAFT = RULES[1]
_LAB = next(r for r in RULES if r.name == "lab")
_STORAGE = next(r for r in RULES if r.name == "below the server")
_FACE = next(r for r in RULES if r.name == "gRPC face")
_GATEWAY = next(r for r in RULES if r.name == "gateway face")
_BELOW = next(r for r in RULES if r.name == "below the API")
_FAKE_KNOWN = {"minietcd.server", "minietcd.server.ids", "minietcd.server.apply", "minietcd.errors",
               "minietcd.server.v3rpc.errors", "minietcd.server.etcd_server",
               "minietcd.lab", "minietcd.lab.cluster", "minietcd.lab.ids", "minietcd.raft.log"}  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "module", "source", "what"),
    [
        (_LAB, "minietcd.lab.cluster", "from minietcd.server.ids import member_id", "minietcd.server.ids"),
        (_LAB, "minietcd.lab.cluster", "from minietcd.server import ids", "minietcd.server"),
        (_LAB, "minietcd.lab.cluster", "import minietcd.server.apply as a", "minietcd.server.apply"),
        (_LAB, "minietcd.lab.cluster", "def f():\n    from minietcd.mvcc import kvstore", "minietcd.mvcc"),
        (_LAB, "minietcd.lab.cluster",
         "import importlib\nimportlib.import_module('minietcd.server.apply')", "minietcd.server.apply"),
        (_STORAGE, "minietcd.storage.wal",
         "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from minietcd.server.config import Config",
         "minietcd.server.config"),
        (_STORAGE, "minietcd.storage.wal", "from ..server import apply", "minietcd.server"),
        (_RAFT, "minietcd.raft.log", "from minietcd.storage import wal", "minietcd.storage"),
        (_RAFT, "minietcd.raft.log", "import minietcd", "imports minietcd"),
        (_FACE, "minietcd.server.v3rpc.kv", "from minietcd.server.apply import StateMachine",
         "minietcd.server.apply"),
        (_FACE, "minietcd.server.v3rpc.kv", "from minietcd.server import etcd_server", "minietcd.server"),
        (_FACE, "minietcd.server.v3rpc.kv", "from minietcd.mvcc import KVStore", "minietcd.mvcc"),
        (_BELOW, "minietcd.server.apply", "from minietcd.server.v3rpc.errors import ERRORS",
         "minietcd.server.v3rpc.errors"),
        (_GATEWAY, "minietcd.server.gateway.handler", "from minietcd.server.etcd_server import EtcdServer",
         "minietcd.server.etcd_server"),
        (_GATEWAY, "minietcd.server.gateway.handler", "from minietcd.server.v3rpc.errors import ERRORS",
         "minietcd.server.v3rpc.errors"),
    ],
)  # fmt: skip
def test_layer_check_catches(rule: Rule, module: str, source: str, what: str) -> None:
    found = violations(rule, module, source, _FAKE_KNOWN)
    assert any(what in v for v in found), found


def test_layer_check_allows_what_the_rule_allows() -> None:
    src = (
        "from __future__ import annotations\n"
        "import hashlib\n"
        "from minietcd.errors import LabError\n"
        "from minietcd.lab.ids import member_id\n"
        "from . import ids\n"
        "from minietcd import errors\n"
    )
    assert violations(_LAB, "minietcd.lab.cluster", src, _FAKE_KNOWN) == []
    assert violations(_RAFT, "minietcd.raft.log", "from minietcd.raft import types\nfrom . import quorum",
                      _FAKE_KNOWN) == []  # fmt: skip
