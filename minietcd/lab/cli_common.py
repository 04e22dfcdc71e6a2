"""What every ``minietcd-lab`` command shares: errors as one line (:func:`lab_errors`), the
``--compose`` flag after a command's name, and the lab dir and cluster a command works on.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from minietcd.errors import LabError
from minietcd.lab.backend import LabCluster, load_cluster
from minietcd.lab.faults import Faults
from minietcd.lab.state import LabState

F = TypeVar("F", bound=Callable[..., Any])


def lab_errors(fn: F) -> F:
    """LabError -> one line on stderr and exit status 1 (no traceback)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LabError as e:
            raise click.ClickException(str(e)) from None

    return cast(F, wrapper)  # functools.wraps keeps fn's signature


COMPOSE_SUBDIR = "compose"


def _set_compose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(dict)["compose"] = True


def compose_option(fn: F) -> F:
    """``--compose`` after the command's name: the same as before it."""
    option = click.option(
        "--compose",
        is_flag=True,
        expose_value=False,
        callback=_set_compose,
        help="work on the docker compose cluster (same as `minietcd-lab --compose ...`)",
    )
    return option(fn)


def is_compose(ctx: click.Context) -> bool:
    return bool(ctx.obj.get("compose"))


def lab_dir_of(ctx: click.Context) -> Path:
    """The lab dir, or its ``compose`` subdirectory with ``--compose``."""
    base = Path(ctx.obj["lab_dir"])
    return base / COMPOSE_SUBDIR if is_compose(ctx) else base


def cluster_of(ctx: click.Context) -> LabCluster:
    lab_dir = lab_dir_of(ctx)
    if not LabState.exists(lab_dir):
        if is_compose(ctx):
            raise LabError(f"no compose cluster in {lab_dir} (start one with `minietcd-lab --compose up`)")
        if LabState.exists(lab_dir / COMPOSE_SUBDIR):
            hint = f"there is a compose one in {lab_dir / COMPOSE_SUBDIR}: add --compose"
            raise LabError(f"no local cluster in {lab_dir}; {hint}")
    return load_cluster(lab_dir)


def faults_of(ctx: click.Context) -> Faults:
    return Faults(cluster_of(ctx))
