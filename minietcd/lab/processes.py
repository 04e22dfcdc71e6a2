"""Processes the lab starts, found again by pid from another invocation of the CLI.

A process is named by its pid *and* its start time (field 22 of ``/proc/PID/stat``), so a pid
the kernel has since handed to someone else is never signalled. Every process runs in a session
(and process group) of its own, so signals reach its children too.

Processes started by this Python process are also kept as ``Popen`` objects and reaped when they
end; processes started by an earlier CLI invocation have been adopted by init, which reaps them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from minietcd.errors import LabError

_popens: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(slots=True, frozen=True)
class ProcessRef:
    """A process the lab started: pid plus kernel start time (clock ticks since boot)."""

    pid: int
    start_ticks: int

    def to_json(self) -> dict[str, int]:
        return {"pid": self.pid, "start_ticks": self.start_ticks}

    @staticmethod
    def from_json(data: Mapping[str, int]) -> ProcessRef:
        return ProcessRef(int(data["pid"]), int(data["start_ticks"]))


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of ``pid``, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) S ppid ...": comm may hold spaces and parentheses; fields follow the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def spawn(
    argv: Sequence[str], *, log_path: Path, env: Mapping[str, str], cwd: Path | None = None
) -> ProcessRef:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    _popens[proc.pid] = proc
    stat = _stat(proc.pid)
    if stat is None:  # exited (and was reaped) at once: a 0 start time matches nothing
        return ProcessRef(proc.pid, 0)
    return ProcessRef(proc.pid, stat[1])


def adopt(proc: subprocess.Popen[bytes]) -> ProcessRef:
    """A ProcessRef for a process started elsewhere in this Python process."""
    _popens[proc.pid] = proc
    stat = _stat(proc.pid)
    return ProcessRef(proc.pid, 0 if stat is None else stat[1])


def _reap(ref: ProcessRef) -> None:
    proc = _popens.get(ref.pid)
    if proc is not None and proc.poll() is not None:
        del _popens[ref.pid]


def state(ref: ProcessRef | None) -> str:
    """``running``, ``stopped`` (SIGSTOP) or ``gone``."""
    if ref is None:
        return "gone"
    _reap(ref)
    stat = _stat(ref.pid)
    if stat is None or stat[1] != ref.start_ticks or stat[0] in ("Z", "X"):
        return "gone"
    return "stopped" if stat[0] in ("T", "t") else "running"


def alive(ref: ProcessRef | None) -> bool:
    return state(ref) != "gone"


def _send(pid: int, sig: signal.Signals) -> None:
    """``sig`` to the group ``pid`` leads, or to ``pid`` alone if it leads none."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def signal_group(ref: ProcessRef, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group of ``ref`` (it leads its own) if it is still ours."""
    if not alive(ref):
        raise LabError(f"process {ref.pid} is not running")
    _send(ref.pid, sig)


def kill(ref: ProcessRef | None, timeout: float = 10.0, sig: signal.Signals = signal.SIGKILL) -> None:
    """Send ``sig`` (default SIGKILL) to the group and wait until the process is gone; a
    process that outlives ``timeout`` after a gentler signal gets SIGKILL. No-op if gone."""
    if ref is None or not alive(ref):
        return
    _send(ref.pid, sig)
    if sig != signal.SIGKILL:
        _send(ref.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
    if not wait_gone(ref, timeout) and sig != signal.SIGKILL:
        _send(ref.pid, signal.SIGKILL)
        wait_gone(ref, timeout)
    if alive(ref):
        raise LabError(f"process {ref.pid} did not exit within {timeout:.0f}s")


def wait_state(ref: ProcessRef, wanted: str, timeout: float = 10.0) -> None:
    """Wait until ``state(ref)`` is ``wanted`` (signals are delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    while (current := state(ref)) != wanted:
        if current == "gone" or time.monotonic() >= deadline:
            raise LabError(f"process {ref.pid} is {current}, not {wanted}, after {timeout:.0f}s")
        time.sleep(0.01)


def wait_gone(ref: ProcessRef, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        proc = _popens.get(ref.pid)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
        if not alive(ref):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
