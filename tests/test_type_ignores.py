"""Every ``# type: ignore`` in hand-written code names its error code and says why, on the same
line: ``# type: ignore[arg-type]  # a wrong type on purpose``. mypy --strict (CI) reports the
ignores that are no longer needed; this test keeps the ones that are explained."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("minietcd", "minietcdctl", "tests", "scripts", "benchmarks", "examples")
GENERATED = ROOT / "minietcd" / "api"
_IGNORE = re.compile(r"type:\s*ignore")
_EXPLAINED = re.compile(r"type:\s*ignore\[[\w,-]+\]\s+#\s*\S")


def unexplained(source: str, name: str = "<src>") -> list[str]:
    """``name:line: comment`` for each type-ignore comment without a code and a reason."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and _IGNORE.search(tok.string) and not _EXPLAINED.search(tok.string):
            out.append(f"{name}:{tok.start[0]}: {tok.string}")
    return out


def test_every_type_ignore_has_a_code_and_a_reason() -> None:
    found: list[str] = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if GENERATED not in path.parents:
                found += unexplained(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, "say why after the ignore (# type: ignore[code]  # why):\n" + "\n".join(found)


def test_the_check_tells_explained_from_bare() -> None:
    assert unexplained("x = f()  # type: ignore[arg-type]  # a wrong type on purpose\n") == []
    assert unexplained("x = f()  # type: ignore[arg-type]\n")
    assert unexplained("x = f()  # type: ignore  # no code\n")
    assert unexplained("s = '# type: ignore'\n") == []  # in a string, not a comment
