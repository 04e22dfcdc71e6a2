"""Errors are typed (DESIGN rule 7), checked on the source by AST:

- nobody raises a *branch* of the server's tree with words of its own (``ServerError("...")``):
  every etcd error is a leaf of :mod:`minietcd.errors` that carries etcd's message and code;
- nobody decides by an error's text: no comparison involves ``str(e)``, ``e.args`` or
  ``e.etcd_message`` of an ``e`` caught as one of the tree's classes (catch the class instead).

Text that only a wire carries (a client reading a status, a third-party error with no type of its
own) is not ours to type; those places are listed in ALLOWED with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

from minietcd import errors as E

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("minietcd", "minietcdctl")
GENERATED = ROOT / "minietcd" / "api"

#: Branches: classes of the server tree that have subclasses and no etcd message of their own.
BRANCHES = sorted(
    name
    for name, cls in vars(E).items()
    if isinstance(cls, type)
    and issubclass(cls, E.ServerError)
    and cls.__subclasses__()
    and "etcd_message" not in vars(cls)
)
#: Names of the tree's classes, as code catches them.
TREE = {name for name, cls in vars(E).items() if isinstance(cls, type) and issubclass(cls, E.MinietcdError)}

#: Files allowed to read an error's text, and why.
ALLOWED: dict[str, str] = {
    "minietcd/lab/fault_table.py": "a member process's start failure reaches the lab as the text of "
    "its fatal log line (etcd's words: 'bind: address already in use')",
}


def _sources() -> list[Path]:
    return [p for top in CHECKED for p in sorted((ROOT / top).rglob("*.py")) if GENERATED not in p.parents]


def _branch_constructions(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id in BRANCHES)
            or (isinstance(node.func, ast.Attribute) and node.func.attr in BRANCHES)
        )
    ]


def _caught_names(handler: ast.ExceptHandler) -> set[str]:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    out = set()
    for t in types:
        if isinstance(t, ast.Name):
            out.add(t.id)
        elif isinstance(t, ast.Attribute):
            out.add(t.attr)
    return out


def _reads_text_of(node: ast.AST, var: str) -> bool:
    """``str(var)``, ``var.args``, ``var.etcd_message`` anywhere in ``node``."""
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Name)
            and sub.func.id == "str"
            and sub.args
            and isinstance(sub.args[0], ast.Name)
            and sub.args[0].id == var
        ):
            return True
        if (
            isinstance(sub, ast.Attribute)
            and sub.attr in ("args", "etcd_message")
            and isinstance(sub.value, ast.Name)
            and sub.value.id == var
        ):
            return True
    return False


def _text_branches(tree: ast.AST) -> list[int]:
    found = []
    for handler in ast.walk(tree):
        if not isinstance(handler, ast.ExceptHandler) or handler.name is None or handler.type is None:
            continue
        if not _caught_names(handler) & TREE:
            continue
        for stmt in handler.body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Compare) and _reads_text_of(node, handler.name):
                    found.append(node.lineno)
    return found


def test_branches_are_known() -> None:
    assert {"ServerError", "MembershipError", "UnavailableError"} <= set(BRANCHES)


def test_no_free_text_errors_and_no_text_branching() -> None:
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text())
        rel = str(path.relative_to(ROOT))
        for line in _branch_constructions(tree):
            found.append(f"{rel}:{line}: raises a branch of the tree; raise its leaf (minietcd/errors/)")
        for line in [] if rel in ALLOWED else _text_branches(tree):
            found.append(f"{rel}:{line}: decides by an error's text; catch its class")
    assert not found, "\n".join(found)


def test_the_checks_catch_what_they_should() -> None:
    src = (
        "from minietcd.errors import LeaderChangedError, ServerError\n"
        "def f():\n"
        "    try:\n"
        "        g()\n"
        "    except ServerError as e:\n"
        "        if str(e) != 'etcdserver: leader changed':\n"
        "            raise\n"
        "    raise ServerError('etcdserver: no leader')\n"
    )
    tree = ast.parse(src)
    assert _branch_constructions(tree) == [8]
    assert _text_branches(tree) == [6]
    fine = "try:\n    g()\nexcept ValueError as e:\n    if 'MaxDepth' in str(e):\n        pass\n"
    assert _text_branches(ast.parse(fine)) == []
