"""minietcdctl: an etcdctl 3.4 work-alike on :mod:`minietcd.client` (see ``main.py``).

Run it as ``python -m cli.minietcdctl`` or, once installed, ``minietcdctl``.
"""

from __future__ import annotations

__all__ = ["main", "run"]


def main() -> None:
    from cli.minietcdctl.main import main as _main

    _main()


def run(argv: list[str] | None = None) -> int:
    from cli.minietcdctl.main import run as _run

    return _run(argv)
