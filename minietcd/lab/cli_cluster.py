"""``minietcd-lab`` commands for the cluster's life: ``up``, ``status``, ``endpoints``, ``down``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from minietcd.errors import LabError
from minietcd.lab.cli_common import cluster_of, compose_option, is_compose, lab_dir_of, lab_errors
from minietcd.lab.cluster import MAX_SIZE, Cluster, ClusterSpec


def _pace(ctx: click.Context, pace: str) -> tuple[int, int]:
    """(heartbeat ms, election ms) of a ``--pace``; the two timing flags may not be given too."""
    from minietcd.lab.web.picture import NORMAL_PACE, TEACH_PACE

    for name in ("heartbeat_interval", "election_timeout"):
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
            raise LabError(f"--pace sets --{name.replace('_', '-')}: give one or the other")
    return TEACH_PACE if pace == "teach" else NORMAL_PACE


@click.command()
@click.option("--size", "-n", type=click.IntRange(1, MAX_SIZE), default=3, show_default=True)
@click.option("--heartbeat-interval", type=int, default=50, show_default=True, help="milliseconds")
@click.option("--election-timeout", type=int, default=500, show_default=True, help="milliseconds")
@click.option("--pre-vote", is_flag=True, help="start members with --pre-vote")
@click.option("--client-proxies", is_flag=True, help="clients reach members through proxies too")
@click.option("--timeout", type=float, default=90.0, show_default=True, help="seconds to wait for health")
@click.option("--pace", type=click.Choice(["teach", "normal"]), default=None,
              help="teach: heartbeat 500 ms, election 5 s (slow enough to follow in `minietcd-lab web`); "
                   "normal: 50 ms / 500 ms")
@compose_option
@click.pass_context
@lab_errors
def up(
    ctx: click.Context,
    size: int,
    heartbeat_interval: int,
    election_timeout: int,
    pre_vote: bool,
    client_proxies: bool,
    timeout: float,
    pace: str | None,
) -> None:
    """Start a cluster of SIZE members and wait until it is healthy."""
    if pace is not None:
        heartbeat_interval, election_timeout = _pace(ctx, pace)
    spec = ClusterSpec(
        size=size,
        heartbeat_ms=heartbeat_interval,
        election_ms=election_timeout,
        pre_vote=pre_vote,
        client_proxies=client_proxies,
        ports=ctx.obj["ports"],
    )
    if is_compose(ctx):
        from minietcd.lab.compose import ComposeCluster

        if spec.ports is not None:
            click.echo("note: --port-base is for local clusters; a compose cluster publishes its own "
                       "ports, shifted by the first free offset (docs/compose.md)", err=True)
        compose = ComposeCluster.up(lab_dir_of(ctx), spec, timeout=timeout)
        leader = compose.wait_healthy(timeout)
        cs = compose.compose
        click.echo(
            f"{size}-member compose cluster up: project {cs.project}, file {cs.file} (leader {leader}); "
            f"Toxiproxy at {compose.state.toxiproxy_url}"
        )
        for m in compose.members:
            click.echo(
                f"  {m.name}  id {m.member_id:x}  client {m.client_url}  "
                f"logs: docker logs {compose.container(m.name)[:12]}"
            )
        click.echo(f"export {compose.endpoints_line()}")
        return
    cluster = Cluster.up(lab_dir_of(ctx), spec, detach=True, timeout=timeout)
    leader = cluster.wait_healthy(timeout)
    s = cluster.state
    click.echo(f"{size}-member cluster up in {s.lab_dir} (leader {leader}); Toxiproxy at {s.toxiproxy_url}")
    for m in cluster.members:
        click.echo(f"  {m.name}  id {m.member_id:x}  client {m.client_url}  log {m.log_path}")
    click.echo(f"export {cluster.endpoints_line()}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@compose_option
@click.pass_context
@lab_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Role, term, raft index, applied index, leader, health and faults of every member."""
    from minietcd.lab.status import collect

    cluster = cluster_of(ctx)
    rows = collect(cluster)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    table = Table(title=f"minietcd-lab: {cluster.state.lab_dir}")
    for col in ("member", "id", "endpoint", "role", "term", "raft index", "applied", "leader", "health"):
        table.add_column(col, justify="right" if col in ("term", "raft index", "applied") else "left")
    table.add_column("faults in force")
    styles = {"leader": "bold green", "follower": "", "no leader": "yellow", "down": "red"}
    for r in rows:
        table.add_row(
            r.name,
            r.member_id,
            r.endpoint,
            f"[{styles.get(r.role, '')}]{r.role}[/]" if styles.get(r.role) else r.role,
            "" if r.term is None else str(r.term),
            "" if r.raft_index is None else str(r.raft_index),
            "" if r.applied_index is None else str(r.applied_index),
            r.leader,
            r.health if r.health == "ok" else f"[red]{r.health}[/]",
            ", ".join(([] if r.process == "running" else [r.process]) + r.faults),
        )
    Console(width=max(160, Console().width)).print(table)


@click.command()
@compose_option
@click.pass_context
@lab_errors
def endpoints(ctx: click.Context) -> None:
    """Print the ETCDCTL_ENDPOINTS line."""
    click.echo(cluster_of(ctx).endpoints_line())


@click.command()
@compose_option
@click.pass_context
@lab_errors
def down(ctx: click.Context) -> None:
    """Stop every member and the Toxiproxy `up` started; delete data (logs are kept).
    With --compose: `compose down -v` of the project `up` started."""
    cluster = cluster_of(ctx)
    stopped = cluster.down()
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    click.echo(f"logs kept in {Path(cluster.state.lab_dir) / 'logs'}")


COMMANDS: tuple[click.Command, ...] = (up, status, endpoints, down)
