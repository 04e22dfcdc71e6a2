"""Regenerate minietcd/api/ from the .proto sources under proto/.

Usage (from anywhere)::

    python scripts/gen_proto.py           # rewrite minietcd/api/ in place
    python scripts/gen_proto.py --check   # exit 1 and name the stale files, write nothing

Every ``proto/**/*.proto`` is compiled by one ``grpc_tools.protoc`` run with
``--python_out``, ``--grpc_python_out`` and ``--pyi_out``; a file at
``proto/minietcd/api/<pkg>/x.proto`` becomes ``minietcd/api/<pkg>/x_pb2.py`` (+ ``.pyi``,
``x_pb2_grpc.py``), and an ``__init__.py`` is written into each generated package. Each
generated module gets one extra first line, ``# mypy: ignore-errors``: mypy follows imports
into minietcd/api even though pyproject excludes it, and protoc's output is not written to
pass our strict settings (the .pyi types are still used by callers). The
output is a pure function of the .proto files and the grpcio-tools version (pinned as
``GRPCIO_TOOLS_VERSION`` below and in pyproject's dev extras), so
``tests/unit/test_proto_generated.py`` can regenerate into a temporary directory and
compare. Generated files are never edited by hand (DESIGN.md rule 8).
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"
API_PACKAGE = Path("minietcd") / "api"  # relative to REPO_ROOT and to any output root

# The grpcio-tools release the committed code was generated with. Another release emits
# different code (version guards, header comments), which the staleness test reports.
GRPCIO_TOOLS_VERSION = "1.85.1"

COMMAND = "python scripts/gen_proto.py"

# Files in minietcd/api/ that this script owns; anything else there is left alone.
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
GENERATED_NAMES = ("__init__.py",)

# First line of every protoc output file (an inline mypy config comment; see module doc).
MYPY_HEADER = "# mypy: ignore-errors\n"

_API_INIT = '''"""Generated protobuf and gRPC modules. Do not edit: run `{command}`.

Sources live in proto/minietcd/api/. The etcd v3 API keeps etcd's proto packages
(etcdserverpb, mvccpb, authpb, v3lockpb, v3electionpb), so these modules speak etcd's wire
format; raftpb is minietcd's own peer protocol.
"""
'''

_PKG_INIT = '''"""Generated from proto/{source}/. Do not edit: run `{command}`."""
'''


def proto_sources(proto_root: Path = PROTO_ROOT) -> list[str]:
    """Every .proto under ``proto_root``, as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(proto_root).as_posix() for p in proto_root.rglob("*.proto"))


def installed_grpcio_tools() -> str:
    return importlib.metadata.version("grpcio-tools")


def generate(out_root: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Compile every .proto under ``proto_root`` into ``out_root`` (a stand-in repo root).

    Returns the generated files relative to ``out_root``, sorted.
    """
    import grpc_tools  # imported here so `--help` works without grpcio-tools

    sources = proto_sources(proto_root)
    if not sources:
        raise SystemExit(f"no .proto files under {proto_root}")
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    out_root.mkdir(parents=True, exist_ok=True)
    out = str(out_root.resolve())
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "--proto_path=.",
        f"--proto_path={well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *sources,
    ]
    # cwd=proto_root and relative names: the file names recorded in the descriptors (and
    # hence the generated code) never depend on where the repository is checked out.
    result = subprocess.run(cmd, cwd=proto_root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"protoc failed ({result.returncode}):\n{result.stderr}")
    files = generated_files(out_root)
    for rel in files:
        _prepend(out_root / rel, MYPY_HEADER)
    _write_inits(out_root, {Path(s).parent for s in sources})
    return generated_files(out_root)


def _prepend(path: Path, line: str) -> None:
    data = path.read_bytes()
    path.write_bytes(line.encode("ascii") + data)


def _write_inits(out_root: Path, source_dirs: set[Path]) -> None:
    """Write an ``__init__.py`` into every package directory protoc wrote into."""

    def in_api(d: Path) -> bool:
        return d == API_PACKAGE or API_PACKAGE in d.parents

    package_dirs: set[Path] = set()
    for d in filter(in_api, source_dirs):
        # every directory from minietcd/api down to d is a package
        package_dirs.add(d)
        package_dirs.update(filter(in_api, d.parents))
    for d in sorted(package_dirs):
        init = out_root / d / "__init__.py"
        init.parent.mkdir(parents=True, exist_ok=True)
        if d == API_PACKAGE:
            text = _API_INIT.format(command=COMMAND)
        else:
            text = _PKG_INIT.format(source=d.as_posix(), command=COMMAND)
        init.write_text(text, encoding="utf-8", newline="\n")


def is_generated_name(name: str) -> bool:
    return name in GENERATED_NAMES or name.endswith(GENERATED_SUFFIXES)


def generated_files(root: Path) -> list[Path]:
    """The files under ``root/minietcd/api`` this script owns, relative to ``root``, sorted."""
    base = root / API_PACKAGE
    if not base.is_dir():
        return []
    return sorted(
        p.relative_to(root)
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and is_generated_name(p.name)
    )


def stale_files(fresh_root: Path, committed_root: Path = REPO_ROOT) -> list[str]:
    """Compare a fresh generation with the committed tree; describe each difference."""
    fresh = set(generated_files(fresh_root))
    committed = set(generated_files(committed_root))
    problems: list[str] = []
    for rel in sorted(fresh | committed):
        if rel not in committed:
            problems.append(f"{rel.as_posix()}: missing (not generated yet)")
        elif rel not in fresh:
            problems.append(f"{rel.as_posix()}: no longer generated by any .proto (delete it)")
        elif not filecmp.cmp(fresh_root / rel, committed_root / rel, shallow=False):
            problems.append(f"{rel.as_posix()}: differs from a fresh generation")
    return problems


def _sync(fresh_root: Path, repo_root: Path) -> list[str]:
    """Make repo_root's generated files equal fresh_root's; return what changed."""
    changes = [
        line.replace("differs from a fresh generation", "regenerated")
        .replace("missing (not generated yet)", "added")
        .replace("no longer generated by any .proto (delete it)", "removed")
        for line in stale_files(fresh_root, repo_root)
    ]
    fresh = set(generated_files(fresh_root))
    for rel in generated_files(repo_root):
        if rel not in fresh:
            (repo_root / rel).unlink()
    for rel in sorted(fresh):
        dest = repo_root / rel
        if not dest.exists() or not filecmp.cmp(fresh_root / rel, dest, shallow=False):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh_root / rel, dest)
    return changes


def version_warning() -> str | None:
    have = installed_grpcio_tools()
    if have == GRPCIO_TOOLS_VERSION:
        return None
    return (
        f"grpcio-tools {have} is installed but the committed code is generated with "
        f"{GRPCIO_TOOLS_VERSION}; run `pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}`"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report stale generated files (exit 1)"
    )
    args = parser.parse_args(argv)
    warning = version_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="minietcd-gen-") as tmp:
        fresh_root = Path(tmp)
        generate(fresh_root)
        if args.check:
            problems = stale_files(fresh_root)
            for line in problems:
                print(f"stale: {line}")
            if problems:
                print(f"run `{COMMAND}` to regenerate")
            return 1 if problems else 0
        changes = _sync(fresh_root, REPO_ROOT)
    for line in changes:
        print(line)
    print(
        f"{len(generated_files(REPO_ROOT))} generated files in {API_PACKAGE.as_posix()}/"
        f" ({len(changes)} changed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
