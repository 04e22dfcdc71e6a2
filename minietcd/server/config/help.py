"""What ``etcd --help`` and ``etcd --version`` print, derived from the flag table."""

from __future__ import annotations

import platform
import sys
from typing import Final

from minietcd import ETCD_API_VERSION, __version__
from minietcd.server.config.table import DEPRECATED, FLAGS, UNSAFE

#: etcd's ``fs.Usage`` text, printed to stderr on ``--help`` and on flag syntax errors.
USAGE_LINE: Final = """Usage:

  etcd [flags]
    Start an etcd server.

  etcd --version
    Show the version of etcd.

  etcd -h | --help
    Show the help information about etcd.

  etcd --config-file
    Path to the server configuration file. Note that if a configuration file is provided, \
other command line flags and environment variables will be ignored.

  etcd gateway
    Run the stateless pass-through etcd TCP connection forwarding proxy.

  etcd grpc-proxy
    Run the stateless etcd v3 gRPC L7 reverse proxy.
"""

# Text etcd's help puts after a section's flags / right after its header.
_SECTION_TRAILER = {
    UNSAFE.title: "\nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus "
    "protocol!\n"
}
_SECTION_LEADER = {DEPRECATED.title: "\n"}


def help_text() -> str:
    """What ``etcd --help`` prints to stdout (after :data:`USAGE_LINE` on stderr), byte for byte."""
    out = ["\n"]
    section: str | None = None
    for spec in FLAGS:
        if spec.section is None:
            continue
        if spec.section != section:
            if section is not None:
                out.append(_SECTION_TRAILER.get(section, "") + "\n")
            section = spec.section
            out.append(section + "\n" + _SECTION_LEADER.get(section, ""))
        out.append(f"  --{spec.name} {spec.help_default}\n")
        out.extend(f"    {line}\n" for line in spec.help)
    if section is not None:
        out.append(_SECTION_TRAILER.get(section, ""))
    return "".join(out) + "\n"


def version_text() -> str:
    """What ``--version`` prints. The first line is etcd's, which scripts and etcdctl parse."""
    return (
        f"etcd Version: {ETCD_API_VERSION}\n"
        f"Git SHA: Not provided (minietcd {__version__})\n"
        f"Go Version: none (Python {platform.python_version()})\n"
        f"Go OS/Arch: {sys.platform}/{_go_arch()}\n"
    )


def _go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386"}.get(
        machine, machine
    )
