"""Where etcd 3.4's Go source is, for the tests that compare our tables and protos with it.

In order: ``$MINIETCD_ETCD_SRC`` (the ``go.etcd.io/etcd`` directory of an unpacked
golang-etcd-server-dev), the package installed (``scripts/setup.sh`` installs it: Debian puts it
under /usr/share/gocode), a copy unpacked in /tmp/etcdsrc, and finally ``apt-get download`` +
``dpkg-deb -x`` into a temporary directory. If none works the test is skipped, except in CI
($CI set), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

PACKAGE = "golang-etcd-server-dev"
GO_SRC_IN_DEB = Path("usr/share/gocode/src/go.etcd.io/etcd")
CANDIDATES = (Path("/") / GO_SRC_IN_DEB, Path("/tmp/etcdsrc") / GO_SRC_IN_DEB)


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"etcd 3.4 source unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"etcd 3.4 source unavailable: {reason}")


def _download(dest: Path) -> Path:
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if not apt or not dpkg:
        unavailable(f"no apt-get/dpkg-deb to fetch {PACKAGE}")
    dl = subprocess.run([apt, "download", PACKAGE], cwd=dest, capture_output=True, text=True, check=False)
    debs = sorted(dest.glob(f"{PACKAGE}_*.deb"))
    if dl.returncode != 0 or not debs:
        unavailable(f"`apt-get download {PACKAGE}` failed: {dl.stderr.strip()[-500:]}")
    unpacked = dest / "root"
    subprocess.run([dpkg, "-x", str(debs[0]), str(unpacked)], check=True)
    return unpacked / GO_SRC_IN_DEB


def find_etcd_source(download_to: Path, has: tuple[str, ...]) -> Path:
    """The first candidate holding every file of ``has`` (paths under go.etcd.io/etcd)."""
    env = os.environ.get("MINIETCD_ETCD_SRC", "")
    for root in ([Path(env)] if env else []) + list(CANDIDATES):
        if all((root / rel).is_file() for rel in has):
            return root
    root = _download(download_to)
    if not all((root / rel).is_file() for rel in has):
        unavailable(f"{PACKAGE} unpacked without {', '.join(has)}")
    return root
