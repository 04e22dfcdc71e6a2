"""The committed minietcd/api/ must be exactly what scripts/gen_proto.py generates.

DESIGN.md rule 8: generated code is never edited by hand and is reproducible with one
command. If this test fails, run the command it names and commit the result.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_gen_proto() -> ModuleType:
    path = REPO_ROOT / "scripts" / "gen_proto.py"
    spec = importlib.util.spec_from_file_location("minietcd_gen_proto", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_gen_proto()


def test_committed_generated_code_is_fresh(tmp_path: Path) -> None:
    gen.generate(tmp_path)
    problems = gen.stale_files(tmp_path, REPO_ROOT)
    if problems:
        lines = [
            "generated code in minietcd/api/ is stale:",
            *(f"  {p}" for p in problems),
            f"fix: run `{gen.COMMAND}` and commit minietcd/api/",
        ]
        warning = gen.version_warning()
        if warning:
            lines.append(f"note: {warning}")
        pytest.fail("\n".join(lines), pytrace=False)


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    files = gen.generate(first)
    assert files == gen.generate(second)
    assert gen.stale_files(first, second) == []


def test_every_proto_has_generated_modules() -> None:
    for source in gen.proto_sources():
        stem = Path(source).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert (REPO_ROOT / f"{stem}{suffix}").is_file(), f"{stem}{suffix} missing"


@pytest.mark.parametrize(
    ("module", "package"),
    [
        ("minietcd.api.etcdserverpb.rpc_pb2", "etcdserverpb"),
        ("minietcd.api.etcdserverpb.raft_internal_pb2", "etcdserverpb"),
        ("minietcd.api.etcdserverpb.etcdserver_pb2", "etcdserverpb"),
        ("minietcd.api.mvccpb.kv_pb2", "mvccpb"),
        ("minietcd.api.authpb.auth_pb2", "authpb"),
        ("minietcd.api.v3lockpb.v3lock_pb2", "v3lockpb"),
        ("minietcd.api.v3electionpb.v3election_pb2", "v3electionpb"),
        ("minietcd.api.raftpb.raft_pb2", "minietcd.raftpb"),
    ],
)
def test_generated_modules_import_with_wire_packages(module: str, package: str) -> None:
    """Python module paths are minietcd.api.*; proto packages (the wire names) are etcd's."""
    mod = importlib.import_module(module)
    assert mod.DESCRIPTOR.package == package
    importlib.import_module(module + "_grpc")


def test_service_paths_are_etcds() -> None:
    from minietcd.api.etcdserverpb import rpc_pb2

    kv = rpc_pb2.DESCRIPTOR.services_by_name["KV"]
    assert kv.full_name == "etcdserverpb.KV"  # gRPC path /etcdserverpb.KV/Range
    assert kv.methods_by_name["Range"].input_type.full_name == "etcdserverpb.RangeRequest"
