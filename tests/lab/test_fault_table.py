"""etcd's fault-tolerance table measured on real clusters of 1-5 members, killing members and
partitioning them off (followers first, and leader first), as `minietcd-lab fault-table` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from minietcd.lab.fault_table import DOCUMENTED, VARIANTS, TableOptions, print_table, run

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_fault_table_sizes_1_to_5(tmp_path: Path) -> None:
    options = TableOptions(sizes=[1, 2, 3, 4, 5], variants=list(VARIANTS), heartbeat_ms=50, election_ms=500)
    result = run(options, tmp_path / "ft", console=Console(stderr=True), progress=False)
    console = Console(width=160, record=True)
    print_table(result, console)
    report = console.export_text()
    assert result.ok, report
    data = result.to_json()
    json.dumps(data)  # serialisable as written by --json
    assert [s["size"] for s in data["sizes"]] == [1, 2, 3, 4, 5]
    for s in result.sizes:
        majority, tolerance = DOCUMENTED[s.size]
        assert s.majority == majority
        for variant in VARIANTS:
            assert s.observed(variant) == tolerance, report
        for v in s.variants:
            assert v.converged, v.convergence
            # k = 0 .. N, each step as expected: success iff N - k >= majority.
            assert [st.k for st in v.steps] == list(range(s.size + 1))
            assert [st.observed for st in v.steps] == [s.size - k >= majority for k in range(s.size + 1)]
    # The even splits 1|1 and 2|2 were checked for "no leader on either side".
    for size in (2, 4):
        s = next(x for x in result.sizes if x.size == size)
        even = [
            side
            for v in s.variants
            if v.variant != "kill"
            for st in v.steps
            if st.k == size // 2
            for side in st.sides
        ]
        assert len(even) == 4 and all("no leader on either side" in side.outcome for side in even), report
    # Minority sides refused linearizable requests and answered serializable ones.
    minority = [
        side
        for s in result.sizes
        for v in s.variants
        for st in v.steps
        for side in st.sides
        if not side.majority
    ]
    assert minority and all("served a serializable get" in side.outcome for side in minority)
