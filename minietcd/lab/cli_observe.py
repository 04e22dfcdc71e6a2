"""``minietcd-lab`` commands that watch a cluster: ``web`` (the live view in a browser, or a
recorded run) and ``events`` (every member's explained Raft events, merged).
"""

from __future__ import annotations

from pathlib import Path

import click

from minietcd.lab.cli_common import cluster_of, compose_option, is_compose, lab_dir_of, lab_errors


@click.command()
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
@compose_option
@click.pass_context
@lab_errors
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
        what = f"replaying {replay_path}" if replay_path else f"watching {lab_dir_of(ctx)}"
        click.echo(f"minietcd-lab web: {url} ({what}); Ctrl-C to stop", err=True)

    try:
        if replay_path is not None:
            asyncio.run(app.run_replay(replay_path, host=host, port=port, open_browser=open_browser,
                                       announce=announce))
        else:
            asyncio.run(app.run_live(lab_dir_of(ctx), compose=is_compose(ctx), host=host, port=port,
                                     open_browser=open_browser, record=record_path, inputs_log=inputs_path,
                                     lesson_pace=lesson_pace, ports=ctx.obj["ports"], announce=announce))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C or SIGTERM: a clean stop
        pass


@click.command()
@click.option("--follow", "-f", is_flag=True, help="keep printing new events until Ctrl-C")
@click.option("--since-start", is_flag=True, help="with --follow: first print every event the members hold")
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line")
@compose_option
@click.pass_context
@lab_errors
def events(ctx: click.Context, follow: bool, since_start: bool, as_json: bool) -> None:
    """Every member's explained Raft events (/debug/raft/events), merged in time order, member ids
    as lab names. Without --follow: what the members hold now."""
    import asyncio

    from minietcd.lab import events as ev

    members = cluster_of(ctx).members
    printer = ev.Printer(members, as_json)
    try:
        if follow:
            asyncio.run(ev.follow(members, printer, since_start=since_start))
        else:
            for line in asyncio.run(ev.held(members)):
                printer(line)
    except KeyboardInterrupt:
        pass


COMMANDS: tuple[click.Command, ...] = (web, events)
