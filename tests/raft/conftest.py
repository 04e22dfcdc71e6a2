"""Options for the Raft simulator (tests/raft/test_simulation.py).

    pytest tests/raft/test_simulation.py                # seeds 0..499 (--seeds 500)
    pytest tests/raft/test_simulation.py --seeds 5000   # more seeds
    pytest tests/raft/test_simulation.py --seed 1234    # replay one seed (what a failure prints)

Pytest reads options only from conftest files it loads at start-up, i.e. those on the way to
the paths given on the command line: pass ``tests/raft`` (or a file in it) along with these
options. Without them the defaults apply, so a bare ``pytest`` runs the default seeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DEFAULT_SEEDS = 500


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raft simulator")
    group.addoption(
        "--seeds",
        type=int,
        default=DEFAULT_SEEDS,
        help=f"how many simulator seeds to run (0..N-1; default {DEFAULT_SEEDS})",
    )
    group.addoption(
        "--seed",
        type=int,
        default=None,
        help="run only this simulator seed (to replay a failure)",
    )


def sim_seeds(config: pytest.Config) -> list[int]:
    one = config.getoption("--seed", default=None)
    if one is not None:
        return [int(one)]
    return list(range(int(config.getoption("--seeds", default=DEFAULT_SEEDS))))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" in metafunc.fixturenames:
        seeds = sim_seeds(metafunc.config)
        metafunc.parametrize("sim_seed", seeds, ids=[f"seed={s}" for s in seeds])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--seed S`` replays one seed: the simulator's other tests are deselected. And the
    soak is marked ``slow`` while CI runs a bare ``pytest``: skip it unless the marker
    expression asks for it (``-m slow``)."""
    here = str(Path(__file__).parent)
    if config.getoption("--seed", default=None) is not None:
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            is_replay = item.path.name != "test_simulation.py" or item.name.startswith("test_seed[")
            (keep if is_replay else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    expr = str(config.getoption("-m", default="") or "")
    if "slow" in expr and "not slow" not in expr:
        return
    skip = pytest.mark.skip(reason="long soak: run with -m slow")
    for item in items:
        if "slow" in item.keywords and str(item.path).startswith(here):
            item.add_marker(skip)
