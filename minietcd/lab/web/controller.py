"""An active/passive controller replica for the lease lesson, and the lesson's handle on them.

Run several replicas: exactly one works, the others stand by, as Kubernetes' controller
manager and scheduler do with ``--leader-elect`` (seeds 001/002). A replica is a process::

    python -m minietcd.lab.web.controller --endpoints 127.0.0.1:2379 --id ctrl-a --ttl 5

It opens a :class:`~minietcd.client.concurrency.Session` (a lease kept alive every TTL/3) and
campaigns in the election ``controller-leader`` (etcd's recipe: key ``controller-leader/<lease
hex>``, the oldest key leads). Once elected it "works": every second it writes
``controller/status``, fenced by a compare on its own key's create revision, so that a replica
that lost its lease cannot overwrite its successor. If it is killed, its keep-alives stop, the
lease expires within the TTL, its key goes with it and the next replica is elected. (The
repository's ``examples/controller.py`` is the same pattern on raw gRPC stubs, for etcd users.)

:class:`Controllers` starts and kills replicas for the lesson and reads the election's queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from minietcd.errors import LabError
from minietcd.lab import probe

ELECTION: Final = "controller-leader"
STATUS_KEY: Final = "controller/status"


async def _replica(endpoints: list[str], identity: str, ttl: int) -> int:
    from minietcd.client import Client
    from minietcd.client.concurrency import Election, Session
    from minietcd.client.kv import Compare, Op

    async with Client(endpoints, timeout=5.0) as client, Session(client, ttl=ttl) as session:
        election = Election(session, ELECTION)
        print(f"{identity}: lease {session.lease_id:x}; campaigning", flush=True)
        await election.campaign(identity)
        print(f"{identity}: elected; working", flush=True)
        while not session.done:
            resp = await (
                client.txn()
                .if_(Compare.create(election.key, "=", election.revision))
                .then(Op.put(STATUS_KEY, f"{identity} at {time.strftime('%H:%M:%S')}"))
                .commit()
            )
            if not resp.succeeded:
                break
            await asyncio.sleep(1.0)
        print(f"{identity}: leadership lost; exiting", flush=True)
        return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minietcd.lab.web.controller")
    ap.add_argument("--endpoints", required=True, help="comma-separated host:port")
    ap.add_argument("--id", required=True)
    ap.add_argument("--ttl", type=int, default=5)
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_replica(args.endpoints.split(","), args.id, args.ttl))
    return 0


@dataclass(slots=True)
class Replica:
    name: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Controllers:
    """The lesson's replicas: processes this web server started (and always stops)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.replicas: dict[str, Replica] = {}

    def start(self, name: str, endpoints: list[str], ttl: int) -> str:
        r = self.replicas.setdefault(name, Replica(name))
        if r.alive:
            raise LabError(f"controller {name} is already running")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            r.process = subprocess.Popen(
                [sys.executable, "-m", "minietcd.lab.web.controller", "--endpoints", ",".join(endpoints),
                 "--id", name, "--ttl", str(ttl)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        return f"controller {name} started (pid {r.process.pid})"

    def kill(self, name: str) -> str:
        r = self.replicas.get(name)
        if r is None or not r.alive or r.process is None:
            raise LabError(f"controller {name} is not running")
        pid = r.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        r.process.wait(timeout=10)
        return f"controller {name} killed (pid {pid}): its lease is no longer kept alive"

    def stop_all(self) -> None:
        for r in self.replicas.values():
            if r.alive and r.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(r.process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    r.process.wait(timeout=10)
        self.replicas.clear()

    def state(self, client_ports: list[int]) -> dict[str, Any]:
        """The election's queue (oldest first: the first leads) and each replica's process, read
        through the first member that answers (blocking)."""
        queue: list[dict[str, Any]] = []
        status = None
        for port in client_ports:
            try:
                kvs = probe.get_prefix(port, ELECTION + "/", timeout=1.0)
                status = probe.get(port, STATUS_KEY, timeout=1.0, serializable=True)
            except probe.ProbeError:
                continue
            queue = [{"key": k, "holder": v, "lease": k.rsplit("/", 1)[-1], "rev": rev}
                     for k, v, rev in sorted(kvs, key=lambda x: x[2])]
            break
        holders = [q["holder"] for q in queue]
        replicas = [
            {"name": r.name, "alive": r.alive,
             "role": "active" if holders[:1] == [r.name] else ("standby" if r.name in holders else "none")}
            for r in self.replicas.values()
        ]  # fmt: skip
        return {"queue": queue, "replicas": replicas, "status": status,
                "active": holders[0] if holders else None}


if __name__ == "__main__":
    sys.exit(main())
