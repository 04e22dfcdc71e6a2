"""Driving ``minietcd-lab`` as a user does, one process per command (tests/lab/test_cli.py for
local clusters, tests/compose/test_lab_compose.py for compose ones)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from minietcd.lab.state import LabState

DEADLINE = 60.0
T = TypeVar("T")


def local_env(lab_dir: Path) -> dict[str, str]:
    """The environment of a local lab in ``lab_dir``, with the built-in fault proxy."""
    env = {k: v for k, v in os.environ.items() if k != "TOXIPROXY_URL" and not k.startswith("ETCD")}
    # The built-in fault proxy, even where a real toxiproxy-server is installed.
    path = [d for d in env.get("PATH", "").split(os.pathsep) if not shutil.which("toxiproxy-server", path=d)]
    env["PATH"] = os.pathsep.join(path)
    env["MINIETCD_LAB_DIR"] = str(lab_dir)
    return env


class LabCli:
    """``minietcd-lab [*prefix] ...`` with ``env``; the cluster's state is in ``lab_dir``."""

    def __init__(self, lab_dir: Path, env: dict[str, str], prefix: Sequence[str] = (), timeout: float = 180):
        self.lab_dir = lab_dir
        self.env = env
        self.prefix = list(prefix)
        self.timeout = timeout

    def run(
        self, *args: str, ok: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.prefix, *args]
        r = subprocess.run(
            [sys.executable, "-m", "minietcd.lab", *argv],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout or self.timeout,
            check=False,
        )
        if ok:
            assert r.returncode == 0, (
                f"minietcd-lab {' '.join(argv)} exited {r.returncode}:\n{r.stdout}{r.stderr}"
            )
        return r

    def status(self) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.run("status", "--json").stdout)
        return {row["name"]: row for row in rows}

    def state(self) -> LabState:
        return LabState.load(self.lab_dir)


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = DEADLINE) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def one_leader(rows: dict[str, dict[str, Any]], among: list[str]) -> str | None:
    """The leader all of ``among`` agree on (and are healthy under), if it is one of them."""
    leaders = {rows[n]["leader"] for n in among}
    if len(leaders) == 1 and all(rows[n]["health"] == "ok" for n in among):
        leader = leaders.pop()
        return leader if leader in among else None
    return None
