"""Our etcd API protos are wire-identical to etcd 3.4's published ones.

The reference is Debian's golang-etcd-server-dev (etcd 3.4.23): its .proto files are
compiled with protoc (gogoproto and google.api annotations stripped: they change Go code
generation, never the wire) and their descriptors are compared with the descriptors built
into our generated modules: every message (full name; each field's name, number, type,
label, type_name and oneof), every enum value, and every service method (input and output
types, streaming flags). Same descriptors means same bytes on the wire and same gRPC paths,
which is what lets etcdctl, etcd3 and aetcd talk to minietcd.

Where the reference comes from: tests/etcd_source.py (the installed golang-etcd-server-dev,
$MINIETCD_ETCD_SRC, or a download). If none works the test is skipped, except in CI ($CI set),
where it fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from minietcd.api.authpb import auth_pb2
from minietcd.api.etcdserverpb import etcdserver_pb2, raft_internal_pb2, rpc_pb2
from minietcd.api.mvccpb import kv_pb2
from minietcd.api.v3electionpb import v3election_pb2
from minietcd.api.v3lockpb import v3lock_pb2
from tests.etcd_source import find_etcd_source, unavailable

pytestmark = pytest.mark.compat

ETCD_VERSION_PREFIX = "3.4."

# etcd's API protos, relative to go.etcd.io/etcd. They import each other as "etcd/<path>".
REFERENCE_FILES = (
    "etcdserver/etcdserverpb/rpc.proto",
    "etcdserver/etcdserverpb/raft_internal.proto",
    "etcdserver/etcdserverpb/etcdserver.proto",
    "mvcc/mvccpb/kv.proto",
    "auth/authpb/auth.proto",
    "etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "etcdserver/api/v3election/v3electionpb/v3election.proto",
)
# raft_internal.proto imports its siblings by bare name.
SIBLING_IMPORTS = {
    "rpc.proto": "etcd/etcdserver/etcdserverpb/rpc.proto",
    "etcdserver.proto": "etcd/etcdserver/etcdserverpb/etcdserver.proto",
}

OUR_MODULES = [
    rpc_pb2,
    raft_internal_pb2,
    etcdserver_pb2,
    kv_pb2,
    auth_pb2,
    v3lock_pb2,
    v3election_pb2,
]


# --------------------------------------------------------------------------- reference


def _etcd_version(root: Path) -> str:
    text = (root / "version" / "version.go").read_text(encoding="utf-8")
    m = re.search(r'\bVersion\s*=\s*"([^"]+)"', text)
    return m.group(1) if m else "unknown"


@pytest.fixture(scope="module")
def etcd_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = find_etcd_source(tmp_path_factory.mktemp("etcd-deb"), REFERENCE_FILES)
    version = _etcd_version(root)
    if not version.startswith(ETCD_VERSION_PREFIX):
        unavailable(f"reference at {root} is etcd {version}, want {ETCD_VERSION_PREFIX}x")
    return root


_GOGO_IMPORT = re.compile(r'^import "gogoproto/gogo\.proto";\n', re.M)
_GOOGLE_IMPORT = re.compile(r'^import "google/api/annotations\.proto";\n', re.M)
_GOGO_FILE_OPTION = re.compile(r"^option \(gogoproto\.\w+\) = \w+;\n", re.M)
_GOGO_FIELD_OPTIONS = re.compile(r"\s*\[\(gogoproto[^\]]*\]")
_HTTP_OPTION = re.compile(r"option \(google\.api\.http\) = \{")
_IMPORT = re.compile(r'import "([^"]+)";')


def _strip_http_options(text: str) -> str:
    """Drop every `option (google.api.http) = {...};` (nested braces included)."""
    out: list[str] = []
    pos = 0
    while m := _HTTP_OPTION.search(text, pos):
        out.append(text[pos : m.start()])
        depth, i = 0, m.end() - 1
        while True:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        pos = i + 1
        if text.startswith(";", pos):
            pos += 1
    out.append(text[pos:])
    return "".join(out)


def strip_annotations(text: str) -> str:
    """etcd's .proto text minus gogoproto and google.api (Go codegen / HTTP gateway only)."""
    text = _strip_http_options(text)
    for pattern in (_GOGO_IMPORT, _GOOGLE_IMPORT, _GOGO_FILE_OPTION, _GOGO_FIELD_OPTIONS):
        text = pattern.sub("", text)
    text = _IMPORT.sub(lambda m: f'import "{SIBLING_IMPORTS.get(m[1], m[1])}";', text)
    assert "gogoproto" not in text and "google.api" not in text
    return text


def compile_reference(src: Path, work: Path) -> list[descriptor_pb2.FileDescriptorProto]:
    import grpc_tools

    tree = work / "proto"
    for rel in REFERENCE_FILES:
        dest = tree / "etcd" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(strip_annotations((src / rel).read_text(encoding="utf-8")))
    out = work / "etcd.pb"
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={tree}",
            f"--proto_path={well_known}",
            f"--descriptor_set_out={out}",
            *(f"etcd/{rel}" for rel in REFERENCE_FILES),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"protoc failed on etcd's protos:\n{result.stderr}"
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return list(fds.file)


def our_files() -> list[descriptor_pb2.FileDescriptorProto]:
    return [
        descriptor_pb2.FileDescriptorProto.FromString(m.DESCRIPTOR.serialized_pb)
        for m in OUR_MODULES
    ]


# --------------------------------------------------------------------------- flattening

Field = tuple[str, int, int, int, str, str]  # name, number, type, label, type_name, oneof
Method = tuple[str, str, bool, bool]  # input, output, client_streaming, server_streaming


def _messages(
    prefix: str, messages: Iterable[descriptor_pb2.DescriptorProto]
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    for m in messages:
        name = f"{prefix}.{m.name}"
        yield name, m
        yield from _messages(name, m.nested_type)


def message_table(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, object]:
    table: dict[str, object] = {}
    for f in files:
        for name, m in _messages(f.package, f.message_type):
            oneofs = [o.name for o in m.oneof_decl]
            fields: list[Field] = [
                (
                    fd.name,
                    fd.number,
                    fd.type,
                    fd.label,
                    fd.type_name,
                    oneofs[fd.oneof_index] if fd.HasField("oneof_index") else "",
                )
                for fd in m.field
            ]
            table[name] = (f.syntax or "proto2", sorted(fields, key=lambda x: x[1]))
    return table


def enum_table(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, object]:
    table: dict[str, object] = {}
    for f in files:
        scopes = [(f.package, f.enum_type)]
        scopes += [(name, m.enum_type) for name, m in _messages(f.package, f.message_type)]
        for prefix, enums in scopes:
            for e in enums:
                table[f"{prefix}.{e.name}"] = sorted((v.name, v.number) for v in e.value)
    return table


def service_table(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, object]:
    table: dict[str, object] = {}
    for f in files:
        for s in f.service:
            methods: dict[str, Method] = {
                md.name: (md.input_type, md.output_type, md.client_streaming, md.server_streaming)
                for md in s.method
            }
            table[f"{f.package}.{s.name}"] = methods
    return table


def diff(kind: str, theirs: dict[str, object], ours: dict[str, object]) -> list[str]:
    problems = [f"{kind} {n}: missing in minietcd" for n in sorted(theirs.keys() - ours.keys())]
    problems += [f"{kind} {n}: not in etcd 3.4" for n in sorted(ours.keys() - theirs.keys())]
    for name in sorted(theirs.keys() & ours.keys()):
        if theirs[name] != ours[name]:
            problems.append(f"{kind} {name}: {_describe(theirs[name], ours[name])}")
    return problems


def _items(value: object) -> set[str]:
    """A table value as comparable lines (fields, enum values, methods, syntax)."""
    if isinstance(value, dict):
        return {f"{k}: {v}" for k, v in value.items()}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], list):
        return {f"syntax {value[0]}", *(str(x) for x in value[1])}
    if isinstance(value, list):
        return {str(x) for x in value}
    return {str(value)}


def _describe(theirs: object, ours: object) -> str:
    a, b = _items(theirs), _items(ours)
    lines = [f"\n    only in etcd:     {x}" for x in sorted(a - b)]
    lines += [f"\n    only in minietcd: {x}" for x in sorted(b - a)]
    return "".join(lines)


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def reference(
    etcd_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[descriptor_pb2.FileDescriptorProto]:
    return compile_reference(etcd_src, tmp_path_factory.mktemp("etcd-protos"))


def test_reference_was_compiled(reference: list[descriptor_pb2.FileDescriptorProto]) -> None:
    packages = {f.package for f in reference}
    assert packages == {"etcdserverpb", "mvccpb", "authpb", "v3lockpb", "v3electionpb"}
    assert len(reference) == len(REFERENCE_FILES)


def test_messages_match_etcd(reference: list[descriptor_pb2.FileDescriptorProto]) -> None:
    theirs, ours = message_table(reference), message_table(our_files())
    assert "etcdserverpb.InternalRaftRequest" in theirs
    assert "etcdserverpb.RangeRequest" in theirs
    problems = diff("message", theirs, ours)
    assert not problems, "\n".join(problems)


def test_enums_match_etcd(reference: list[descriptor_pb2.FileDescriptorProto]) -> None:
    theirs, ours = enum_table(reference), enum_table(our_files())
    assert "mvccpb.Event.EventType" in theirs
    problems = diff("enum", theirs, ours)
    assert not problems, "\n".join(problems)


def test_services_match_etcd(reference: list[descriptor_pb2.FileDescriptorProto]) -> None:
    theirs, ours = service_table(reference), service_table(our_files())
    assert set(theirs) == {
        "etcdserverpb.KV",
        "etcdserverpb.Watch",
        "etcdserverpb.Lease",
        "etcdserverpb.Cluster",
        "etcdserverpb.Maintenance",
        "etcdserverpb.Auth",
        "v3lockpb.Lock",
        "v3electionpb.Election",
    }
    problems = diff("service", theirs, ours)
    assert not problems, "\n".join(problems)


def test_same_bytes_on_the_wire(reference: list[descriptor_pb2.FileDescriptorProto]) -> None:
    """Belt and braces: a message built from etcd's descriptors parses with ours."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    for f in reference:
        pool.Add(f)
    txn = pool.FindMessageTypeByName("etcdserverpb.TxnRequest")
    msg: Any = message_factory.GetMessageClass(txn)()
    cmp = msg.compare.add(result=1, target=3, key=b"k", value=b"v", range_end=b"z")
    assert cmp.WhichOneof("target_union") == "value"
    msg.success.add().request_put.key = b"k"
    msg.failure.add().request_range.key = b"k"
    ours = rpc_pb2.TxnRequest.FromString(msg.SerializeToString())
    assert ours.compare[0].value == b"v"
    assert ours.success[0].request_put.key == b"k"
    assert ours.SerializeToString() == msg.SerializeToString()
