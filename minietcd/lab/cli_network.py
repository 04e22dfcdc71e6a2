"""``minietcd-lab`` commands on the peer links through Toxiproxy: ``partition``, ``heal``, and the
toxics of one link (``slow``, ``blackhole``, ``flaky``, ``clear``); ``reset`` undoes them all.
"""

from __future__ import annotations

import click

from minietcd.errors import LabError
from minietcd.lab.cli_common import compose_option, faults_of, lab_errors
from minietcd.lab.faults import parse_duration_ms, parse_groups, parse_link


def _link(args: tuple[str, ...]) -> tuple[str, str]:
    """A link given as ``'n1->n2'`` (quoted: ``>`` is a shell redirection) or as ``n1 n2``."""
    if len(args) == 2 and "->" not in "".join(args):
        return args[0], args[1]
    if len(args) == 1:
        return parse_link(args[0])
    raise LabError(f"bad link {' '.join(args)!r}: write SRC DST (e.g. n1 n2) or 'SRC->DST'")


@click.command()
@click.argument("groups", nargs=-1, required=True)
@compose_option
@click.pass_context
@lab_errors
def partition(ctx: click.Context, groups: tuple[str, ...]) -> None:
    """Split the network into GROUPS (comma-separated names, e.g. `n1,n2 n3,n4,n5`); members in
    no group form one more group. Replaces any partition in force."""
    full = faults_of(ctx).partition(parse_groups(groups))
    click.echo("partitioned: " + " | ".join(",".join(g) for g in full))


@click.command()
@compose_option
@click.pass_context
@lab_errors
def heal(ctx: click.Context) -> None:
    """Enable every link again (partitions and isolation end; toxics stay)."""
    faults_of(ctx).heal()
    click.echo("healed: every link enabled")


@click.command()
@click.argument("link", nargs=-1, required=True)
@click.option("--latency", default="200ms", show_default=True, help="e.g. 200ms, 1s")
@click.option("--jitter", default="0ms", show_default=True, help="e.g. 50ms")
@compose_option
@click.pass_context
@lab_errors
def slow(ctx: click.Context, link: tuple[str, ...], latency: str, jitter: str) -> None:
    """Delay what SRC sends to DST (LINK: SRC DST, or quoted 'SRC->DST')."""
    lat, jit = parse_duration_ms(latency), parse_duration_ms(jitter)
    faults_of(ctx).slow(_link(link), lat, jit)
    click.echo(f"slowed {'->'.join(_link(link))}: {lat}ms ± {jit}ms")


@click.command()
@click.argument("link", nargs=-1, required=True)
@compose_option
@click.pass_context
@lab_errors
def blackhole(ctx: click.Context, link: tuple[str, ...]) -> None:
    """Drop everything SRC sends to DST (connections hang)."""
    faults_of(ctx).blackhole(_link(link))
    click.echo(f"blackholed {'->'.join(_link(link))}")


@click.command()
@click.argument("link", nargs=-1, required=True)
@click.option("--probability", "-p", type=float, default=0.3, show_default=True)
@compose_option
@click.pass_context
@lab_errors
def flaky(ctx: click.Context, link: tuple[str, ...], probability: float) -> None:
    """Blackhole a fraction of SRC's connections to DST (rolled per connection)."""
    faults_of(ctx).flaky(_link(link), probability)
    click.echo(f"flaky {'->'.join(_link(link))}: {probability:.0%} of connections blackholed")


@click.command()
@click.argument("link", nargs=-1, required=True)
@compose_option
@click.pass_context
@lab_errors
def clear(ctx: click.Context, link: tuple[str, ...]) -> None:
    """Remove every toxic (slow, blackhole, flaky) from one link."""
    n = faults_of(ctx).clear(_link(link))
    click.echo(f"cleared {'->'.join(_link(link))}: {n} toxic(s) removed")


@click.command()
@compose_option
@click.pass_context
@lab_errors
def reset(ctx: click.Context) -> None:
    """Heal, remove every toxic, resume paused members (killed ones stay down)."""
    faults_of(ctx).reset()
    click.echo("reset: links enabled, toxics removed, paused members resumed")


COMMANDS: tuple[click.Command, ...] = (partition, heal, slow, blackhole, flaky, clear, reset)
