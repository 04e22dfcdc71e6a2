"""minietcdctl: an etcdctl 3.4 work-alike on :mod:`minietcd.client` (see ``main.py``).

Run it as ``python -m minietcdctl`` or, once installed, ``minietcdctl``.
"""

from __future__ import annotations

import os

# gRPC's C core logs at INFO to stderr (e.g. every failed TLS handshake while it retries);
# minietcdctl's stderr is one error line in etcd's wording. Read when grpc is first imported,
# so it is set here, before any submodule imports grpc. GRPC_VERBOSITY=INFO shows them again.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

__all__ = ["main", "run"]


def main() -> None:
    from minietcdctl.main import main as _main

    _main()


def run(argv: list[str] | None = None) -> int:
    from minietcdctl.main import run as _run

    return _run(argv)
