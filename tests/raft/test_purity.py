"""DESIGN rule 1: the Raft core is pure. Checked on the source, by AST.

``minietcd/raft/`` may import only an allowlist of pure standard modules and its own package
(plus ``minietcd.errors``). No asyncio, socket, time, os, threading, files, logging, clocks:
time enters as ``tick()``. Randomness only from a seeded ``random.Random`` instance (in Config):
the module-level ``random.randint`` & co. share a hidden global seed, which would make runs
irreproducible. Built-ins that do I/O (``open``, ``print``, ``input``) are banned as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import minietcd.raft

CORE = Path(minietcd.raft.__file__).parent
MODULES = sorted(CORE.glob("*.py"))

# Pure standard-library modules (no I/O, no clock, no global state worth worrying about).
ALLOWED_STDLIB = {
    "__future__", "abc", "bisect", "collections", "collections.abc", "dataclasses", "enum",
    "functools", "heapq", "itertools", "math", "operator", "random", "struct", "typing",
}
ALLOWED_PACKAGES = ("minietcd.raft", "minietcd.errors")
IO_BUILTINS = {"open", "print", "input", "breakpoint", "exec", "eval", "__import__", "compile"}
RANDOM_OK = {"Random"}  # the only thing a core module may take from ``random``


def violations(source: str, name: str = "<src>") -> list[str]:
    """Every impurity in ``source``, as ``name:line: what``."""
    tree = ast.parse(source)
    out: list[str] = []
    random_aliases: set[str] = set()

    def bad(node: ast.AST, what: str) -> None:
        out.append(f"{name}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not _allowed(a.name):
                    bad(node, f"imports {a.name}")
                if a.name == "random":
                    random_aliases.add(a.asname or "random")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative import: inside the package
                continue
            if not _allowed(mod):
                bad(node, f"imports from {mod}")
            if mod == "random":
                for a in node.names:
                    if a.name not in RANDOM_OK:
                        bad(node, f"imports random.{a.name} (use the seeded Config.rng)")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in IO_BUILTINS
        ):
            bad(node, f"calls {node.func.id}()")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in random_aliases
            and node.attr not in RANDOM_OK
        ):
            bad(node, f"uses {node.value.id}.{node.attr} (module-level random; use Config.rng)")
    return out


def _allowed(module: str) -> bool:
    if module in ALLOWED_STDLIB:
        return True
    return any(module == p or module.startswith(p + ".") for p in ALLOWED_PACKAGES)


def test_there_are_core_modules() -> None:
    assert {"raft.py", "rawnode.py", "log.py"} <= {m.name for m in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=[m.name for m in MODULES])
def test_core_module_is_pure(path: Path) -> None:
    found = violations(path.read_text(), f"minietcd/raft/{path.name}")
    assert not found, "the Raft core must stay pure (DESIGN rule 1):\n" + "\n".join(found)


# -- the checker itself catches what it should ----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("import asyncio", "imports asyncio"),
        ("import os.path", "imports os.path"),
        ("from time import monotonic", "imports from time"),
        ("import socket as s", "imports socket"),
        ("import threading", "imports threading"),
        ("import logging", "imports logging"),
        ("from minietcd.storage import wal", "imports from minietcd.storage"),
        ("import random\nx = random.randint(1, 6)", "uses random.randint"),
        ("import random as r\nr.seed(4)", "uses r.seed"),
        ("from random import choice", "imports random.choice"),
        ("print('hello')", "calls print()"),
        ("with open('f') as f: pass", "calls open()"),
    ],
)
def test_purity_check_catches(source: str, what: str) -> None:
    found = violations(source)
    assert any(what in v for v in found), found


def test_purity_check_allows_the_seeded_rng() -> None:
    src = (
        "from __future__ import annotations\n"
        "import random\n"
        "from random import Random\n"
        "from dataclasses import dataclass, field\n"
        "from minietcd.raft.types import Entry\n"
        "from . import log\n"
        "rng: random.Random = random.Random(4)\n"
        "x = rng.randrange(10)\n"
    )
    assert violations(src) == []
