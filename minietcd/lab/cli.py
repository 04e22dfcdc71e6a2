"""``minietcd-lab``: real minietcd clusters on 127.0.0.1 with faults through Toxiproxy.

Console script (for pyproject): ``minietcd-lab = "minietcd.lab.cli:main"``; meanwhile run it as
``python -m minietcd.lab``. Every command works on the cluster recorded in the lab dir
(``--lab-dir``, ``$MINIETCD_LAB_DIR``, default ``/tmp/minietcd-lab-$UID``). See docs/lab.md.

``--compose`` (before the command or after its name: ``minietcd-lab --compose up`` and
``minietcd-lab up --compose`` are the same) works on a docker compose cluster instead, recorded
in ``<lab dir>/compose`` (``minietcd.lab.compose``, docs/compose.md); the commands are the same.

This module is the root group (the options every command shares) and :func:`main`. The commands
live by group: :mod:`.cli_cluster` (up, status, endpoints, down), :mod:`.cli_members` (kill,
restart, pause, resume, isolate, replace, transfer, remove, add), :mod:`.cli_network`
(partition, heal, slow, blackhole, flaky, clear, reset), :mod:`.cli_observe` (web, events),
:mod:`.cli_experiments` (fault-table, chaos) and :mod:`.cli_discovery` (discovery serve); what
they share is :mod:`.cli_common`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from minietcd.errors import LabError
from minietcd.lab import cli_cluster, cli_discovery, cli_experiments, cli_members, cli_network, cli_observe
from minietcd.lab.cli_common import lab_errors
from minietcd.lab.labdir import LAB_DIR_ENV, default_lab_dir
from minietcd.lab.ports import PORT_BASE_ENV, PORT_RANGE_ENV, PortPlan


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--lab-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=LAB_DIR_ENV,
    default=None,
    help=f"Where the cluster's state, data and logs live (${LAB_DIR_ENV}; default /tmp/minietcd-lab-$UID).",
)
@click.option(
    "--compose",
    is_flag=True,
    help="Members are containers of a docker compose project (state in <lab dir>/compose; docs/compose.md).",
)
@click.option(
    "--port-base",
    type=click.IntRange(1024, 65535),
    metavar="BASE",
    envvar=PORT_BASE_ENV,
    default=None,
    help=f"Every port the lab opens comes from BASE on (${PORT_BASE_ENV}); the default lab dir is then "
    "/tmp/minietcd-lab-$UID-pBASE. For users sharing a machine (docs/lab.md).",
)
@click.option(
    "--port-range",
    type=click.IntRange(1, 64512),
    metavar="N",
    envvar=PORT_RANGE_ENV,
    default=None,
    help=f"With --port-base: any free ports among BASE..BASE+N-1 (${PORT_RANGE_ENV}); without it, "
    "exactly the ports needed, from BASE on.",
)
@click.pass_context
@lab_errors
def cli(
    ctx: click.Context, lab_dir: Path | None, compose: bool, port_base: int | None, port_range: int | None
) -> None:
    """Real minietcd clusters of 1-9 members on 127.0.0.1 (or in containers with --compose), every
    peer link through Toxiproxy."""
    ctx.ensure_object(dict)
    if port_range is not None and port_base is None:
        raise LabError("--port-range needs a --port-base")
    ports = None if port_base is None else PortPlan(port_base, port_range)
    ctx.obj["ports"] = ports
    ctx.obj["lab_dir"] = lab_dir or default_lab_dir(ports)
    ctx.obj["compose"] = compose


# Every command, group by group (each module lists its own in COMMANDS).
for _group in (cli_cluster, cli_members, cli_network, cli_observe, cli_experiments, cli_discovery):
    for _command in _group.COMMANDS:
        cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (console script ``minietcd-lab = "minietcd.lab.cli:main"``)."""
    args = list(argv) if argv is not None else None
    try:
        rc = cli.main(args=args, prog_name="minietcd-lab", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
