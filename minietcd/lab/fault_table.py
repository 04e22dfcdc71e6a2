"""etcd's fault-tolerance table, measured on real clusters (``minietcd-lab fault-table``).

etcd's FAQ ("What is failure tolerance?") documents, for a cluster of N members, a majority of
N // 2 + 1 and a failure tolerance of (N - 1) // 2. For each size this starts one cluster (every
peer link through Toxiproxy) and, for each *variant* below, takes k = 0, 1, ..., N members away
one more at a time and checks each side of the cluster:

* ``kill``: SIGKILL the current leader (else the first member left); survivors are one side.
* ``partition``: partition the k members off; followers are taken first, so the leader stays
  with the rest while it can.
* ``partition-leader``: the same, but the current leader of the rest is taken first.
  In both partition variants k = N cuts every member off from every other.

A side with a majority (``>= N // 2 + 1`` members) must accept a linearizable put and serve it
back with a linearizable get (from another member where it has one) within the deadline. A side
without a majority must refuse both and still answer a serializable get. An even split (1|1,
2|2, 3|3, 4|4) must elect no leader on either side, checked over several election timeouts. The
*observed* tolerance of a variant is the largest k for which the remaining members (the side
that was not taken away) still wrote and read. After k = N the variant heals (restarts the
killed, heals the links) and every member must converge: equal HashKV at one revision.

This module runs the table (:func:`run`: one cluster per size, local or compose). One size's
steps and checks are :mod:`.fault_table_experiment`; the numbers, options and results
:mod:`.fault_table_results`; the table on the terminal and as a PNG :mod:`.fault_table_output`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from minietcd.errors import LabError, LabPortTakenError
from minietcd.lab.backend import LabCluster, load_cluster
from minietcd.lab.cluster import Cluster, ClusterSpec
from minietcd.lab.fault_table_experiment import Experiment
from minietcd.lab.fault_table_output import print_table, require_png_support, write_png
from minietcd.lab.fault_table_results import (
    DOCUMENTED,
    VARIANTS,
    SizeResult,
    TableOptions,
    TableResult,
    parse_sizes,
    parse_variants,
)
from minietcd.lab.labdir import exclusive
from minietcd.lab.ports import PortPlan
from minietcd.lab.state import LabState
from minietcd.lab.toxiproxy import start_toxiproxy

# The fault table in one import (the CLI, the lessons and the tests import these from here).
__all__ = [
    "BACKENDS",
    "DOCUMENTED",
    "VARIANTS",
    "TableOptions",
    "TableResult",
    "launcher",
    "parse_sizes",
    "parse_variants",
    "print_table",
    "require_png_support",
    "run",
    "write_png",
]

BACKENDS = ("local", "compose")


Launcher = Callable[[Path, ClusterSpec, float], LabCluster]


def _up_local(lab_dir: Path, spec: ClusterSpec, timeout: float, toxiproxy_url: str) -> LabCluster:
    try:
        return Cluster.up(lab_dir, spec, toxiproxy_url=toxiproxy_url, timeout=timeout)
    except LabPortTakenError:
        if spec.ports is not None and spec.ports.span is None:
            raise  # (the ports of a --port-base without --port-range would be the same again)
    # A port taken by someone else between choosing and binding: once more, on new ports.
    return Cluster.up(lab_dir, spec, toxiproxy_url=toxiproxy_url, timeout=timeout)


@contextlib.contextmanager
def launcher(backend: str, ports: PortPlan | None = None) -> Iterator[Launcher]:
    """How each size's cluster is started: local processes sharing one Toxiproxy (stopped on
    exit; with ``ports``, on its first port, the clusters on the rest), or a compose project of
    its own per size (Docker is checked here, before any)."""
    if backend == "compose":
        from minietcd.lab.compose import ComposeCluster, check_docker

        check_docker()
        yield lambda lab_dir, spec, timeout: ComposeCluster.up(lab_dir, spec, timeout=timeout)
        return
    if backend != "local":
        raise LabError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    with start_toxiproxy(port=None if ports is None else ports.base) as toxiproxy:
        rest = None if ports is None else ports.after(1)

        def up(lab_dir: Path, spec: ClusterSpec, timeout: float) -> LabCluster:
            spec.ports = rest
            return _up_local(lab_dir, spec, timeout, toxiproxy.url)

        yield up


def _leftover(lab_dir: Path) -> None:
    """Stop what a run that was killed left in ``lab_dir``."""
    from minietcd.lab.compose import is_compose_lab

    if LabState.exists(lab_dir) or is_compose_lab(lab_dir):
        with contextlib.suppress(LabError):
            load_cluster(lab_dir).down()


def run(
    options: TableOptions,
    work_dir: Path,
    console: Console | None = None,
    progress: bool = True,
) -> TableResult:
    """Measure every size in ``options`` (one cluster at a time, in ``work_dir``/sizeN), on the
    backend ``options.backend``."""
    console = console or Console(stderr=True)
    result = TableResult(options)
    started = time.monotonic()
    steps_total = sum(len(options.variants) * (n + 2) for n in options.sizes)
    with (
        exclusive(work_dir, "fault-table"),
        launcher(options.backend, options.ports) as start_cluster,
        Progress(
            TextColumn("[bold]{task.description:<38}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            disable=not progress,
        ) as bar,
    ):
        task = bar.add_task("starting", total=steps_total)

        def tick(text: str) -> None:
            bar.update(task, description=text, advance=1)

        for n in options.sizes:
            size_result = SizeResult(n)
            t0 = time.monotonic()
            bar.update(task, description=f"N={n}: starting the cluster")
            spec = ClusterSpec(size=n, heartbeat_ms=options.heartbeat_ms, election_ms=options.election_ms)
            cluster: LabCluster | None = None
            lab_dir = work_dir / f"size{n}"
            _leftover(lab_dir)
            try:
                cluster = start_cluster(lab_dir, spec, options.startup_timeout)
                experiment = Experiment(cluster, options, tick)
                experiment.prepare()
                for variant in options.variants:
                    size_result.variants.append(experiment.run_variant(variant))
            except LabError as e:
                size_result.error = str(e)
            finally:
                if cluster is not None:
                    try:
                        cluster.down()
                    except LabError as e:
                        size_result.error = size_result.error or str(e)
            size_result.seconds = time.monotonic() - t0
            result.sizes.append(size_result)
            done = sum(len(options.variants) * (m + 2) for m in options.sizes if m <= n)
            bar.update(task, completed=done)
    result.seconds = time.monotonic() - started
    return result
