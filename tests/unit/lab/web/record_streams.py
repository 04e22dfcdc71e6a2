"""Records the input streams test_picture.py replays (run by hand; the files are committed).

    python -m tests.unit.lab.web.record_streams tests/unit/lab/web/data

For each scenario: a fresh 3-member lab cluster at normal pace, ``minietcd-lab web
--record-inputs`` watching it, lab actions through the web API as the page sends them, then
the stream is thinned (a member's view is kept when it brings events or messages or its role,
term, vote, leader, commit or log changed: the rest repeats what the picture already has) and
gzip-compressed.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from minietcd.lab.cluster import Cluster, ClusterSpec
from minietcd.lab.ports import free_ports


def _post(port: int, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/action",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            out: dict[str, Any] = json.loads(r.read())
    except urllib.error.HTTPError as e:
        out = json.loads(e.read())
    print(body, "->", out)
    return out


def _leader(port: int) -> str:
    """The leader the page shows, once it shows one (the server may still be starting)."""
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cluster", timeout=5) as r:
                frame = json.loads(r.read())["frame"]
        except OSError:
            frame = None
        if frame and frame["leader"]:
            return str(frame["leader"])
        time.sleep(0.1)
    raise SystemExit("no leader")


def thin(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    for x in lines:
        v = x.get("view")
        if "member" in x and v is not None:
            sig = [v[k] for k in ("role", "term", "vote", "lead", "commit", "last_index", "started")]
            if not v["events"] and not v["messages"] and last.get(x["member"]) == sig:
                continue
            last[x["member"]] = sig
        keep.append(x)
    return keep


def record(out: Path, name: str, scenario: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lab = Path(tmp) / "lab"
        cluster = Cluster.up(lab, ClusterSpec(size=3), timeout=90)
        port = free_ports(1)[0]
        inputs = Path(tmp) / "inputs.jsonl"
        env = {**os.environ, "MINIETCD_LAB_DIR": str(lab)}
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "minietcd.lab",
                "web",
                "--port",
                str(port),
                "--record-inputs",
                str(inputs),
            ],
            env=env,
            start_new_session=True,
        )
        try:
            _leader(port)
            scenario(port)
            time.sleep(2.0)
        finally:
            os.killpg(web.pid, signal.SIGINT)
            web.wait(30)
            cluster.down()
        lines = [json.loads(x) for x in inputs.read_text().splitlines()]
    kept = thin(lines)
    path = out / f"{name}.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in kept).encode()))
    print(f"{path}: {len(kept)} of {len(lines)} inputs")


def leader_killed(port: int) -> None:
    lead = _leader(port)
    _post(port, {"action": "kill", "members": [lead]})
    time.sleep(3.0)
    _post(port, {"action": "restart", "members": [lead]})
    time.sleep(3.0)


def old_leader_cut_off(port: int) -> None:
    lead = _leader(port)
    others = [n for n in ("n1", "n2", "n3") if n != lead]
    _post(port, {"action": "partition", "groups": [[lead], others]})
    _post(port, {"action": "put", "key": "lost", "value": "never", "via": lead, "timeout": 0.5})
    time.sleep(3.0)
    _post(port, {"action": "put", "key": "kept", "value": "yes", "via": others[0]})
    time.sleep(1.0)
    _post(port, {"action": "heal"})
    time.sleep(3.0)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    record(target, "leader-killed", leader_killed)
    record(target, "old-leader-cut-off", old_leader_cut_off)
