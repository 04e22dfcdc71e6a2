"""``minietcd-lab`` commands that measure and judge on fresh clusters: ``fault-table`` (etcd's
fault-tolerance table, :mod:`minietcd.lab.fault_table`) and ``chaos`` (a workload under a
seeded nemesis, checked for linearizability, :mod:`minietcd.lab.chaos`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from minietcd.lab.cli_common import compose_option, is_compose, lab_dir_of, lab_errors
from minietcd.lab.cluster import MAX_SIZE
from minietcd.lab.faults import parse_duration_ms


@click.command("fault-table")
@click.option("--sizes", default="1-9", show_default=True, help="e.g. 1-9, 3, 1,3,5")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--png", "png_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--variants", default="kill,partition,partition-leader", show_default=True)
@click.option("--heartbeat-interval", type=int, default=50, show_default=True, help="milliseconds")
@click.option("--election-timeout", type=int, default=500, show_default=True, help="milliseconds")
@compose_option
@click.pass_context
@lab_errors
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
        backend="compose" if is_compose(ctx) else "local",
        ports=ctx.obj["ports"],
    )
    if png_path is not None:
        fault_table.require_png_support()
    work = lab_dir_of(ctx) / "fault-table"
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


@click.command()
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
@compose_option
@click.pass_context
@lab_errors
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
        lab_dir=lab_dir_of(ctx) / "chaos",
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
        backend="compose" if is_compose(ctx) else "local",
    )
    result = run_chaos(opts)
    click.echo(result.report)
    if not result.ok:
        ctx.exit(1)


COMMANDS: tuple[click.Command, ...] = (fault_table_command, chaos)
