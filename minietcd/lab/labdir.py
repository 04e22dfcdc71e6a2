"""Lab dirs that two users or two runs never share by accident, and the server a lab runs.

A lab dir holds one cluster (``lab.json``, ``data/``, ``logs/``). The default,
``/tmp/minietcd-lab-$UID``, is per user id; on a machine where several people share a uid (or
one person runs several clusters) each cluster gets its own dir from its port range:
``/tmp/minietcd-lab-$UID-pBASE`` for ``--port-base BASE`` (``$MINIETCD_LAB_PORT_BASE``), so
the same option that keeps two clusters' ports apart keeps their dirs apart. ``--lab-dir``
(``$MINIETCD_LAB_DIR``) overrides both; the pytest plugin gives every cluster a dir under
pytest's ``tmp_path``.

What guards a dir:

* ``minietcd-lab up`` (``Cluster.up``) refuses a dir whose cluster still runs, naming its
  processes, and clears one whose processes are all gone (left by a run that was killed);
* one-shot runs that start and stop clusters of their own (``chaos``, ``fault-table``) hold
  ``run.lock`` in their work dir while they run (``exclusive``): a second run there is
  refused at once instead of stopping the first one's cluster as "left over".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from minietcd.errors import LabError
from minietcd.lab import processes
from minietcd.lab.ports import PortPlan
from minietcd.lab.state import LabState

LAB_DIR_ENV = "MINIETCD_LAB_DIR"
LOCK_FILE = "run.lock"


def default_lab_dir(ports: PortPlan | None = None) -> Path:
    """``$MINIETCD_LAB_DIR``, else ``/tmp/minietcd-lab-$UID``, or ``/tmp/minietcd-lab-$UID-pBASE``
    for a cluster on a port range of its own (see the module docstring)."""
    configured = os.environ.get(LAB_DIR_ENV)
    if configured:
        return Path(configured)
    suffix = "" if ports is None else f"-p{ports.base}"
    return Path(f"/tmp/minietcd-lab-{os.getuid()}{suffix}")


def live_processes(state: LabState) -> list[str]:
    """The processes of a recorded cluster that still run ("n1 pid 1234", "its Toxiproxy")."""
    alive = [
        f"{m.name} pid {m.process.pid}" for m in state.members if m.process and processes.alive(m.process)
    ]
    if processes.alive(state.toxiproxy_process):
        alive.append("its Toxiproxy")
    return alive


def refuse_if_running(lab_dir: Path) -> bool:
    """LabError if ``lab_dir`` holds a cluster that still runs (or a compose cluster); True if
    it holds one whose processes are all gone (the caller clears it), False if none."""
    if (lab_dir / "compose.json").exists():
        raise LabError(f"{lab_dir} holds a compose cluster: stop it with `minietcd-lab --compose down`")
    if not LabState.exists(lab_dir):
        return False
    alive = live_processes(LabState.load(lab_dir))
    if alive:
        raise LabError(
            f"{lab_dir} already holds a running cluster ({', '.join(alive)}): `minietcd-lab down` "
            "stops it if it is yours; for a cluster of your own give --port-base or --lab-dir"
        )
    return True


@contextlib.contextmanager
def exclusive(work_dir: Path, what: str) -> Iterator[None]:
    """Hold ``work_dir/run.lock`` while a ``what`` run (e.g. "chaos") uses ``work_dir``; a
    one-line LabError if another process holds it. The lock is the kernel's (flock): it goes
    away with the process that held it, however that process ended."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise LabError(
                f"another {what} run ({holder}) is using {work_dir}: wait for it to end, or give this "
                "one a lab dir of its own (--lab-dir, or --port-base)"
            ) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def routable(server: Sequence[str]) -> bool:
    """Whether members run with ``server`` dial their peers through the proxies the lab names in
    ``MINIETCD_LAB_PEER_ROUTES``: minietcd does (``minietcd.server.transport``); etcd, which
    dials the peer URLs of its membership directly, does not, so its cluster gets no links
    (process faults only). Empty ``server``: this minietcd."""
    if not server:
        return True
    try:
        out = subprocess.run(
            [*server, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"cannot run {' '.join(server)} --version: {e}") from None
    if not out.startswith("etcd Version:"):
        raise LabError(f"{' '.join(server)} is not an etcd server (`--version` printed {out[:60]!r})")
    return "minietcd" in out
