"""Log lines in etcd 3.4's default (capnslog) format, so tools that wait for etcd's startup
lines ("ready to serve client requests") work with minietcd in its place:

    2026-11-23 19:40:00.123456 I | etcdserver: published {Name:n1 ...} to cluster 1c2d...

The text before the colon is the etcd package the line would come from; our loggers say it in
the message ("etcdserver: ...", "raft: ...").
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

#: capnslog's NOTICE ("N |"), between INFO and WARNING: etcd logs discovery progress at it.
NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

_LEVEL_LETTERS = {
    logging.DEBUG: "D",
    logging.INFO: "I",
    NOTICE: "N",
    logging.WARNING: "W",
    logging.ERROR: "E",
    logging.CRITICAL: "C",
}


class CapnslogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.%f")
        letter = _LEVEL_LETTERS.get(record.levelno, "I")
        msg = record.getMessage()
        if ": " not in msg.split(" ", 1)[0] + " ":  # no "package: " prefix: name the module
            msg = f"{record.name.rsplit('.', 1)[-1]}: {msg}"
        line = f"{ts} {letter} | {msg}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CapnslogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(
        {"debug": logging.DEBUG, "warn": logging.WARNING, "error": logging.ERROR}.get(level, logging.INFO)
    )
    # grpc and aiohttp are chatty at INFO; their warnings still show.
    for noisy in ("grpc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
