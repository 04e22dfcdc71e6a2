"""``minietcd-lab``: real minietcd clusters on 127.0.0.1 with faults through Toxiproxy.

Console script (for pyproject): ``minietcd-lab = "minietcd.lab.cli:main"``; meanwhile run it as
``python -m minietcd.lab``. Every command works on the cluster recorded in the lab dir
(``--lab-dir``, ``$MINIETCD_LAB_DIR``, default ``/tmp/minietcd-lab-$UID``). See docs/lab.md.

``--compose`` (before the command or after its name: ``minietcd-lab --compose up`` and
``minietcd-lab up --compose`` are the same) works on a docker compose cluster instead, recorded
in ``<lab dir>/compose`` (``minietcd.lab.compose``, docs/compose.md); the commands are the same.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from rich.console import Console
from rich.table import Table

from minietcd.errors import LabError
from minietcd.lab.backend import LabCluster, load_cluster
from minietcd.lab.cluster import MAX_SIZE, Cluster, ClusterSpec
from minietcd.lab.faults import Faults, parse_duration_ms, parse_groups, parse_link
from minietcd.lab.labdir import LAB_DIR_ENV, default_lab_dir
from minietcd.lab.ports import PORT_BASE_ENV, PORT_RANGE_ENV, PortPlan
from minietcd.lab.state import LabState

F = TypeVar("F", bound=Callable[..., Any])


def _lab_errors(fn: F) -> F:
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


def _compose_option(fn: F) -> F:
    """``--compose`` after the command's name: the same as before it."""
    option = click.option(
        "--compose",
        is_flag=True,
        expose_value=False,
        callback=_set_compose,
        help="work on the docker compose cluster (same as `minietcd-lab --compose ...`)",
    )
    return option(fn)


def _is_compose(ctx: click.Context) -> bool:
    return bool(ctx.obj.get("compose"))


def _lab_dir(ctx: click.Context) -> Path:
    """The lab dir, or its ``compose`` subdirectory with ``--compose``."""
    base = Path(ctx.obj["lab_dir"])
    return base / COMPOSE_SUBDIR if _is_compose(ctx) else base


def _cluster(ctx: click.Context) -> LabCluster:
    lab_dir = _lab_dir(ctx)
    if not LabState.exists(lab_dir):
        if _is_compose(ctx):
            raise LabError(f"no compose cluster in {lab_dir} (start one with `minietcd-lab --compose up`)")
        if LabState.exists(lab_dir / COMPOSE_SUBDIR):
            hint = f"there is a compose one in {lab_dir / COMPOSE_SUBDIR}: add --compose"
            raise LabError(f"no local cluster in {lab_dir}; {hint}")
    return load_cluster(lab_dir)


def _link(args: tuple[str, ...]) -> tuple[str, str]:
    """A link given as ``'n1->n2'`` (quoted: ``>`` is a shell redirection) or as ``n1 n2``."""
    if len(args) == 2 and "->" not in "".join(args):
        return args[0], args[1]
    if len(args) == 1:
        return parse_link(args[0])
    raise LabError(f"bad link {' '.join(args)!r}: write SRC DST (e.g. n1 n2) or 'SRC->DST'")


def _pace(ctx: click.Context, pace: str) -> tuple[int, int]:
    """(heartbeat ms, election ms) of a ``--pace``; the two timing flags may not be given too."""
    from minietcd.lab.web.picture import NORMAL_PACE, TEACH_PACE

    for name in ("heartbeat_interval", "election_timeout"):
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
            raise LabError(f"--pace sets --{name.replace('_', '-')}: give one or the other")
    return TEACH_PACE if pace == "teach" else NORMAL_PACE


def _faults(ctx: click.Context) -> Faults:
    return Faults(_cluster(ctx))


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
@_lab_errors
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


@cli.command()
@click.option("--size", "-n", type=click.IntRange(1, MAX_SIZE), default=3, show_default=True)
@click.option("--heartbeat-interval", type=int, default=50, show_default=True, help="milliseconds")
@click.option("--election-timeout", type=int, default=500, show_default=True, help="milliseconds")
@click.option("--pre-vote", is_flag=True, help="start members with --pre-vote")
@click.option("--client-proxies", is_flag=True, help="clients reach members through proxies too")
@click.option("--timeout", type=float, default=90.0, show_default=True, help="seconds to wait for health")
@click.option("--pace", type=click.Choice(["teach", "normal"]), default=None,
              help="teach: heartbeat 500 ms, election 5 s (slow enough to follow in `minietcd-lab web`); "
                   "normal: 50 ms / 500 ms")
@_compose_option
@click.pass_context
@_lab_errors
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
    if _is_compose(ctx):
        from minietcd.lab.compose import ComposeCluster

        if spec.ports is not None:
            click.echo("note: --port-base is for local clusters; a compose cluster publishes its own "
                       "ports, shifted by the first free offset (docs/compose.md)", err=True)
        compose = ComposeCluster.up(_lab_dir(ctx), spec, timeout=timeout)
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
    cluster = Cluster.up(_lab_dir(ctx), spec, detach=True, timeout=timeout)
    leader = cluster.wait_healthy(timeout)
    s = cluster.state
    click.echo(f"{size}-member cluster up in {s.lab_dir} (leader {leader}); Toxiproxy at {s.toxiproxy_url}")
    for m in cluster.members:
        click.echo(f"  {m.name}  id {m.member_id:x}  client {m.client_url}  log {m.log_path}")
    click.echo(f"export {cluster.endpoints_line()}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@_compose_option
@click.pass_context
@_lab_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Role, term, raft index, applied index, leader, health and faults of every member."""
    from minietcd.lab.status import collect

    cluster = _cluster(ctx)
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


@cli.command()
@_compose_option
@click.pass_context
@_lab_errors
def endpoints(ctx: click.Context) -> None:
    """Print the ETCDCTL_ENDPOINTS line."""
    click.echo(_cluster(ctx).endpoints_line())


@cli.command()
@_compose_option
@click.pass_context
@_lab_errors
def down(ctx: click.Context) -> None:
    """Stop every member and the Toxiproxy `up` started; delete data (logs are kept).
    With --compose: `compose down -v` of the project `up` started."""
    cluster = _cluster(ctx)
    stopped = cluster.down()
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    click.echo(f"logs kept in {Path(cluster.state.lab_dir) / 'logs'}")


def _member_command(name: str, doc: str, action: Callable[[Faults, Sequence[str]], None], verb: str) -> None:
    @cli.command(name=name, help=doc)
    @click.argument("members", nargs=-1, required=True)
    @_compose_option
    @click.pass_context
    @_lab_errors
    def command(ctx: click.Context, members: tuple[str, ...]) -> None:
        action(_faults(ctx), members)
        click.echo(f"{verb}: {', '.join(members)}")


_member_command(
    "kill", "SIGKILL members (they stay down until `restart`); compose: docker kill.", Faults.kill, "killed"
)
_member_command(
    "restart",
    "SIGKILL members if running, then start them on their data dirs; compose: docker kill + docker start.",
    Faults.restart,
    "restarted",
)
_member_command("pause", "SIGSTOP members; compose: docker pause.", Faults.pause, "paused")
_member_command("resume", "SIGCONT paused members; compose: docker unpause.", Faults.resume, "resumed")
_member_command(
    "isolate", "Disable every link to and from members (adds to faults in force).", Faults.isolate, "isolated"
)


@cli.command()
@click.argument("member")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="seconds for each step")
@_compose_option
@click.pass_context
@_lab_errors
def replace(ctx: click.Context, member: str, timeout: float) -> None:
    """Replace MEMBER as etcd operators replace a failed one: MemberRemove, wipe its data dir,
    MemberAdd the same name and peer URL (a new member id), start it with
    --initial-cluster-state existing, wait until healthy (docs/lab.md, member-replace).
    Compose: a new container and data volume."""
    rep = _cluster(ctx).replace_member(member, timeout=timeout)
    click.echo(f"replaced {rep.describe()} (removed via {rep.removed_via}, added via {rep.added_via})")


@cli.command()
@click.argument("member")
@_compose_option
@click.pass_context
@_lab_errors
def transfer(ctx: click.Context, member: str) -> None:
    """Make MEMBER the leader: etcd's MoveLeader through the current leader (as `etcdctl
    move-leader`)."""
    from minietcd.lab import controls

    was = controls.transfer_leader(_cluster(ctx), member)
    click.echo(f"leadership moved: {was} -> {member}")


@cli.command()
@click.argument("member")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="seconds to retry refusals")
@click.pass_context
@_lab_errors
def remove(ctx: click.Context, member: str, timeout: float) -> None:
    """MemberRemove MEMBER through a running member, stop it and wipe its data dir (`add` puts it
    back)."""
    from minietcd.lab import controls

    rep = controls.remove_member(_cluster(ctx), member, timeout=timeout)
    click.echo(f"removed {member} ({rep.old_id:x}) through {rep.removed_via}")


@cli.command()
@click.argument("member")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="seconds to retry refusals")
@click.pass_context
@_lab_errors
def add(ctx: click.Context, member: str, timeout: float) -> None:
    """MemberAdd a removed MEMBER back (same name and peer URL, a new id) and start it joining."""
    from minietcd.lab import controls

    rep = controls.add_member(_cluster(ctx), member, timeout=timeout)
    click.echo(f"added {member} back as {rep.new_id:x} through {rep.added_via}")


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8380, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--open", "open_browser", is_flag=True, help="open the page in a browser")
@click.option("--replay", "replay_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="play a recording (no cluster needed)")
@click.option("--record", "record_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="save the run to this file (every 10 s and on exit; .gz to compress)")
@click.option("--record-inputs", "inputs_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, hidden=True, help="write what the picture is fed, as JSON lines (for tests)")
@click.option("--lesson-pace", type=click.Choice(["teach", "normal"]), default="teach", show_default=True,
              help="the pace of the clusters lessons start")
@_compose_option
@click.pass_context
@_lab_errors
def web(
    ctx: click.Context,
    port: int,
    host: str,
    open_browser: bool,
    replay_path: Path | None,
    record_path: Path | None,
    inputs_path: Path | None,
    lesson_pace: str,
) -> None:
    """A live view of the lab's cluster in a browser: members, links, messages, logs, the
    explained events, controls and guided lessons (docs/lab.md). With --replay, a recorded run."""
    import asyncio

    from minietcd.lab.web import app

    def announce(url: str) -> None:
        what = f"replaying {replay_path}" if replay_path else f"watching {_lab_dir(ctx)}"
        click.echo(f"minietcd-lab web: {url} ({what}); Ctrl-C to stop", err=True)

    try:
        if replay_path is not None:
            asyncio.run(app.run_replay(replay_path, host=host, port=port, open_browser=open_browser,
                                       announce=announce))
        else:
            asyncio.run(app.run_live(_lab_dir(ctx), compose=_is_compose(ctx), host=host, port=port,
                                     open_browser=open_browser, record=record_path, inputs_log=inputs_path,
                                     lesson_pace=lesson_pace, ports=ctx.obj["ports"], announce=announce))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C or SIGTERM: a clean stop
        pass


@cli.command()
@click.argument("groups", nargs=-1, required=True)
@_compose_option
@click.pass_context
@_lab_errors
def partition(ctx: click.Context, groups: tuple[str, ...]) -> None:
    """Split the network into GROUPS (comma-separated names, e.g. `n1,n2 n3,n4,n5`); members in
    no group form one more group. Replaces any partition in force."""
    full = _faults(ctx).partition(parse_groups(groups))
    click.echo("partitioned: " + " | ".join(",".join(g) for g in full))


@cli.command()
@_compose_option
@click.pass_context
@_lab_errors
def heal(ctx: click.Context) -> None:
    """Enable every link again (partitions and isolation end; toxics stay)."""
    _faults(ctx).heal()
    click.echo("healed: every link enabled")


@cli.command()
@click.argument("link", nargs=-1, required=True)
@click.option("--latency", default="200ms", show_default=True, help="e.g. 200ms, 1s")
@click.option("--jitter", default="0ms", show_default=True, help="e.g. 50ms")
@_compose_option
@click.pass_context
@_lab_errors
def slow(ctx: click.Context, link: tuple[str, ...], latency: str, jitter: str) -> None:
    """Delay what SRC sends to DST (LINK: SRC DST, or quoted 'SRC->DST')."""
    lat, jit = parse_duration_ms(latency), parse_duration_ms(jitter)
    _faults(ctx).slow(_link(link), lat, jit)
    click.echo(f"slowed {'->'.join(_link(link))}: {lat}ms ± {jit}ms")


@cli.command()
@click.argument("link", nargs=-1, required=True)
@_compose_option
@click.pass_context
@_lab_errors
def blackhole(ctx: click.Context, link: tuple[str, ...]) -> None:
    """Drop everything SRC sends to DST (connections hang)."""
    _faults(ctx).blackhole(_link(link))
    click.echo(f"blackholed {'->'.join(_link(link))}")


@cli.command()
@click.argument("link", nargs=-1, required=True)
@click.option("--probability", "-p", type=float, default=0.3, show_default=True)
@_compose_option
@click.pass_context
@_lab_errors
def flaky(ctx: click.Context, link: tuple[str, ...], probability: float) -> None:
    """Blackhole a fraction of SRC's connections to DST (rolled per connection)."""
    _faults(ctx).flaky(_link(link), probability)
    click.echo(f"flaky {'->'.join(_link(link))}: {probability:.0%} of connections blackholed")


@cli.command()
@click.argument("link", nargs=-1, required=True)
@_compose_option
@click.pass_context
@_lab_errors
def clear(ctx: click.Context, link: tuple[str, ...]) -> None:
    """Remove every toxic (slow, blackhole, flaky) from one link."""
    n = _faults(ctx).clear(_link(link))
    click.echo(f"cleared {'->'.join(_link(link))}: {n} toxic(s) removed")


@cli.command()
@_compose_option
@click.pass_context
@_lab_errors
def reset(ctx: click.Context) -> None:
    """Heal, remove every toxic, resume paused members (killed ones stay down)."""
    _faults(ctx).reset()
    click.echo("reset: links enabled, toxics removed, paused members resumed")


@cli.command("fault-table")
@click.option("--sizes", default="1-9", show_default=True, help="e.g. 1-9, 3, 1,3,5")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--variants", default="kill,partition,partition-leader", show_default=True)
@click.option("--heartbeat-interval", type=int, default=50, show_default=True, help="milliseconds")
@click.option("--election-timeout", type=int, default=500, show_default=True, help="milliseconds")
@_compose_option
@click.pass_context
@_lab_errors
def fault_table_command(
    ctx: click.Context,
    sizes: str,
    json_path: Path | None,
    png_path: Path | None,
    variants: str,
    heartbeat_interval: int,
    election_timeout: int,
) -> None:
    """Measure etcd's fault-tolerance table on real clusters (in containers with --compose: a
    compose project per size); exit 1 on any mismatch."""
    import minietcd.lab.fault_table as fault_table

    options = fault_table.TableOptions(
        sizes=fault_table.parse_sizes(sizes),
        variants=fault_table.parse_variants(variants),
        heartbeat_ms=heartbeat_interval,
        election_ms=election_timeout,
        backend="compose" if _is_compose(ctx) else "local",
        ports=ctx.obj["ports"],
    )
    if png_path is not None:
        fault_table.require_png_support()
    work = _lab_dir(ctx) / "fault-table"
    console = Console(width=max(120, Console().width))
    result = fault_table.run(options, work, console=console)
    fault_table.print_table(result, console)
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        console.print(f"JSON written to {json_path}")
    if png_path is not None:
        fault_table.write_png(result, png_path)
        console.print(f"PNG written to {png_path}")
    if not result.ok:
        ctx.exit(1)


@cli.command()
@click.option("--size", "-n", type=click.IntRange(1, MAX_SIZE), default=5, show_default=True)
@click.option("--duration", default="60s", show_default=True, help="workload time under faults, e.g. 60s")
@click.option("--nemesis", default="partition,kill,pause,slow,leader-transfer", show_default=True,
              help="comma list of partition,kill,pause,slow,leader-transfer,member-replace (or none)")
@click.option("--seed", type=int, default=None, help="RNG seed of the schedule (default: random, printed)")
@click.option("--clients-per-member", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--keys", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the history as JSON lines")
@click.option("--unsafe-local-reads", is_flag=True,
              help="TEST ONLY: members serve linearizable reads locally (the checker must object)")
@click.option("--record", "record_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="record the run for `minietcd-lab web --replay` (operations, faults, leader lane)")
@_compose_option
@click.pass_context
@_lab_errors
def chaos(
    ctx: click.Context,
    size: int,
    duration: str,
    nemesis: str,
    seed: int | None,
    clients_per_member: int,
    keys: int,
    html_path: Path | None,
    json_path: Path | None,
    unsafe_local_reads: bool,
    record_path: Path | None,
) -> None:
    """Clients + a seeded nemesis on a fresh cluster, then the linearizability, watch and
    durability checks and the final membership; exit 1 on a violation or a member missing."""
    import random as _random

    from minietcd.lab.chaos import ChaosOptions, parse_nemeses, run_chaos

    opts = ChaosOptions(
        lab_dir=_lab_dir(ctx) / "chaos",
        size=size,
        duration=parse_duration_ms(duration) / 1000.0,
        nemeses=parse_nemeses(nemesis),
        seed=seed if seed is not None else _random.SystemRandom().randrange(1 << 31),
        clients_per_member=clients_per_member,
        keys=keys,
        html=html_path,
        history_json=json_path,
        record=record_path,
        unsafe_local_reads=unsafe_local_reads,
        log=lambda s: click.echo(s, err=True),
        ports=ctx.obj["ports"],
        backend="compose" if _is_compose(ctx) else "local",
    )
    result = run_chaos(opts)
    click.echo(result.report)
    if not result.ok:
        ctx.exit(1)


@cli.command()
@click.option("--follow", "-f", is_flag=True, help="keep printing new events until Ctrl-C")
@click.option("--since-start", is_flag=True, help="with --follow: first print every event the members hold")
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line")
@_compose_option
@click.pass_context
@_lab_errors
def events(ctx: click.Context, follow: bool, since_start: bool, as_json: bool) -> None:
    """Every member's explained Raft events (/debug/raft/events), merged in time order, member ids
    as lab names. Without --follow: what the members hold now."""
    import asyncio

    from minietcd.lab import events as ev

    members = _cluster(ctx).members
    printer = ev.Printer(members, as_json)
    try:
        if follow:
            asyncio.run(ev.follow(members, printer, since_start=since_start))
        else:
            for line in asyncio.run(ev.held(members)):
                printer(line)
    except KeyboardInterrupt:
        pass


@cli.group()
def discovery() -> None:
    """A discovery service for etcd's --discovery URLs, like discovery.etcd.io (docs/discovery.md)."""


@discovery.command("serve")
@click.option("--listen", default="127.0.0.1:8087", show_default=True, help="host:port to serve HTTP on")
@click.option(
    "--endpoints", default="127.0.0.1:2379", show_default=True,
    help="comma-separated client URLs of the etcd or minietcd cluster that stores the tokens",
)  # fmt: skip
@click.option("--prefix-url", default="", help="what token URLs start with (default: http://<listen>)")
@click.option("--cacert", default="", help="CA bundle to verify the backing cluster's https endpoints")
@_lab_errors
def discovery_serve(listen: str, endpoints: str, prefix_url: str, cacert: str) -> None:
    """Serve /new?size=N and the token URLs (etcd's v2 discovery protocol) until Ctrl-C."""
    import asyncio
    import logging
    import signal

    from minietcd.lab.discovery_service import serve

    if ":" not in listen or not listen.rpartition(":")[2].isdigit():
        raise LabError(f"--listen {listen!r}: want host:port")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        options: dict[str, object] = {"ca_file": cacert} if cacert else {}
        eps = [e.strip() for e in endpoints.split(",") if e.strip()]
        try:
            await serve(listen, eps, prefix_url, stop=stop, client_options=options)
        except OSError as e:
            raise LabError(f"cannot serve on {listen}: {e.strerror or e}") from None

    asyncio.run(run())


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
