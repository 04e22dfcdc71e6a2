"""A run of the live view in one file, and reading it back for ``minietcd-lab web --replay``.

The file is one JSON object (gzip-compressed when its name ends in ``.gz``)::

    {"format": "minietcd-lab-recording", "version": 1, "title": "...", "created": <unix time>,
     "frames":   [<picture frame>, ...],      # the cluster every 0.2 s (picture.Picture.frame)
     "timeline": [<story item>, ...],         # explained events, lab actions, notes
     "messages": [<message>, ...],            # the sampled messages, drawn as moving dots
     "chaos":    {...}}                       # only for a chaos run (chaos_view.py)

Everything the page needs to play the run again with no cluster: the same drawing code runs on
recorded frames instead of live ones.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from minietcd.errors import LabError
from minietcd.lab.web.collector import Stage

FORMAT: Final = "minietcd-lab-recording"
VERSION: Final = 1


def from_stage(stage: Stage, title: str = "minietcd-lab web") -> dict[str, Any]:
    """Everything the stage still holds, as a recording."""
    frames = [f for _, f in stage.frames]
    since = frames[0]["t"] if frames else 0.0
    return make(
        title,
        frames,
        list(stage.picture.timeline),
        [m for m in stage.picture.messages if m["t"] >= since],
    )


def make(
    title: str,
    frames: Iterable[Mapping[str, Any]],
    timeline: Iterable[Mapping[str, Any]],
    messages: Iterable[Mapping[str, Any]],
    chaos: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "title": title,
        "created": time.time(),
        "frames": list(frames),
        "timeline": list(timeline),
        "messages": list(messages),
    }
    if chaos is not None:
        rec["chaos"] = dict(chaos)
    return rec


def dumps(rec: Mapping[str, Any]) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode()


def save(path: str | os.PathLike[str], rec: Mapping[str, Any]) -> None:
    """Write atomically (a temporary file renamed), gzip-compressed for ``*.gz``."""
    path = Path(path)
    data = dumps(rec)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a recording (LabError, one line, if it is not one)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise LabError(f"cannot read {path}: {e.strerror or e}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise LabError(f"{path}: broken gzip file ({e})") from None
    try:
        rec = json.loads(data)
    except ValueError as e:
        raise LabError(f"{path} is not a recording (not JSON: {e})") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise LabError(f"{path} is not a minietcd-lab recording")
    if rec.get("version") != VERSION:
        raise LabError(f"{path}: recording version {rec.get('version')!r}, this lab reads {VERSION}")
    for key in ("frames", "timeline", "messages"):
        if not isinstance(rec.get(key), list):
            raise LabError(f"{path}: the recording has no {key} list")
    if not rec["frames"]:
        raise LabError(f"{path}: the recording holds no frames")
    return rec
