"""What the compose tests need from the machine: docker, a compose, the images (see conftest.py).

In CI (``$CI`` set) anything missing is a failure: scripts/ci-docker.sh must have installed it;
nothing here installs anything. Elsewhere the tests skip, saying what is missing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from minietcd.errors import LabError
from minietcd.lab.compose import compose_command

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-offline-images.sh"
IMAGE = os.environ.get("MINIETCD_IMAGE", "minietcd:latest")
BASE_IMAGE = "minietcd-base:bookworm"


def unavailable(reason: str) -> NoReturn:
    """CI must have docker (scripts/ci-docker.sh); a developer's machine may not."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI runs scripts/ci-docker.sh first, which provides it)", pytrace=False)
    pytest.skip(reason)


def run(
    args: list[str], timeout: float = 120.0, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{shlex.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def _etcdctl_command() -> list[str]:
    """etcdctl on the host (CI installs it), else the project's own etcdctl-compatible CLI."""
    etcdctl = shutil.which("etcdctl")
    return [etcdctl] if etcdctl else [sys.executable, "-m", "minietcdctl"]


@dataclass(frozen=True)
class Tools:
    compose: list[str]
    etcdctl: list[str]
    env: dict[str, str]


def make_tools() -> Tools:
    """Check docker and compose, build the images (unless MINIETCD_COMPOSE_SKIP_BUILD=1)."""
    if shutil.which("docker") is None:
        unavailable("docker is not installed")
    try:
        info = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30, check=False)
    except subprocess.TimeoutExpired:
        unavailable("`docker info` timed out: is dockerd healthy?")
    if info.returncode != 0:
        unavailable(f"the Docker daemon is not reachable: {info.stderr.strip()}")
    try:
        compose = compose_command()  # $MINIETCD_COMPOSE, else v2 if present, else docker-compose
    except LabError as e:
        unavailable(str(e))
    env = dict(os.environ)
    # No registry here: the fault proxy in the minietcd image stands in for ghcr.io/shopify/toxiproxy.
    env.setdefault("TOXIPROXY_IMAGE", IMAGE)
    env.setdefault("MINIETCD_IMAGE", IMAGE)
    if os.environ.get("MINIETCD_COMPOSE_SKIP_BUILD") != "1":
        base_missing = run(["docker", "image", "inspect", BASE_IMAGE], check=False).returncode != 0
        if base_missing and not (shutil.which("debootstrap") or Path("/usr/sbin/debootstrap").exists()):
            unavailable(
                f"no {BASE_IMAGE} and no debootstrap to build it: run scripts/build-offline-images.sh"
                " (or with --base-image python:3.11-slim), then MINIETCD_COMPOSE_SKIP_BUILD=1"
            )
        run(["bash", str(BUILD_SCRIPT)], timeout=900)
    elif run(["docker", "image", "inspect", IMAGE], check=False).returncode != 0:
        unavailable(f"MINIETCD_COMPOSE_SKIP_BUILD=1 but there is no {IMAGE}")
    return Tools(compose, _etcdctl_command(), env)
