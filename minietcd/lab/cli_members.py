"""``minietcd-lab`` commands on members: their processes (``kill``, ``restart``, ``pause``,
``resume``), all their links at once (``isolate``), and the cluster's membership and leadership
(``replace``, ``transfer``, ``remove``, ``add``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click

from minietcd.lab.cli_common import cluster_of, compose_option, faults_of, lab_errors
from minietcd.lab.faults import Faults


def _member_command(
    name: str, doc: str, action: Callable[[Faults, Sequence[str]], None], verb: str
) -> click.Command:
    @click.command(name=name, help=doc)
    @click.argument("members", nargs=-1, required=True)
    @compose_option
    @click.pass_context
    @lab_errors
    def command(ctx: click.Context, members: tuple[str, ...]) -> None:
        action(faults_of(ctx), members)
        click.echo(f"{verb}: {', '.join(members)}")

    return command


kill = _member_command(
    "kill", "SIGKILL members (they stay down until `restart`); compose: docker kill.", Faults.kill, "killed"
)
restart = _member_command(
    "restart",
    "SIGKILL members if running, then start them on their data dirs; compose: docker kill + docker start.",
    Faults.restart,
    "restarted",
)
pause = _member_command("pause", "SIGSTOP members; compose: docker pause.", Faults.pause, "paused")
resume = _member_command(
    "resume", "SIGCONT paused members; compose: docker unpause.", Faults.resume, "resumed"
)
isolate = _member_command(
    "isolate", "Disable every link to and from members (adds to faults in force).", Faults.isolate, "isolated"
)


@click.command()
@click.argument("member")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="seconds for each step")
@compose_option
@click.pass_context
@lab_errors
def replace(ctx: click.Context, member: str, timeout: float) -> None:
    """Replace MEMBER as etcd operators replace a failed one: MemberRemove, wipe its data dir,
    MemberAdd the same name and peer URL (a new member id), start it with
    --initial-cluster-state existing, wait until healthy (docs/lab.md, member-replace).
    Compose: a new container and data volume."""
    rep = cluster_of(ctx).replace_member(member, timeout=timeout)
    click.echo(f"replaced {rep.describe()} (removed via {rep.removed_via}, added via {rep.added_via})")


@click.command()
@click.argument("member")
@compose_option
@click.pass_context
@lab_errors
def transfer(ctx: click.Context, member: str) -> None:
    """Make MEMBER the leader: etcd's MoveLeader through the current leader (as `etcdctl
    move-leader`)."""
    from minietcd.lab import controls

    was = controls.transfer_leader(cluster_of(ctx), member)
    click.echo(f"leadership moved: {was} -> {member}")


@click.command()
@click.argument("member")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="seconds to retry refusals")
@click.pass_context
@lab_errors
def remove(ctx: click.Context, member: str, timeout: float) -> None:
    """MemberRemove MEMBER through a running member, stop it and wipe its data dir (`add` puts it
    back)."""
    from minietcd.lab import controls

    rep = controls.remove_member(cluster_of(ctx), member, timeout=timeout)
    click.echo(f"removed {member} ({rep.old_id:x}) through {rep.removed_via}")


@click.command()
@click.argument("member")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="seconds to retry refusals")
@click.pass_context
@lab_errors
def add(ctx: click.Context, member: str, timeout: float) -> None:
    """MemberAdd a removed MEMBER back (same name and peer URL, a new id) and start it joining."""
    from minietcd.lab import controls

    rep = controls.add_member(cluster_of(ctx), member, timeout=timeout)
    click.echo(f"added {member} back as {rep.new_id:x} through {rep.added_via}")


COMMANDS: tuple[click.Command, ...] = (kill, restart, pause, resume, isolate, replace, transfer, remove, add)
