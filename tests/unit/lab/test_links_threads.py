"""Two labs' links driven from two threads of one process (as the web view does: its collector
reads the old cluster's links in one thread while an action starts the new cluster in another).
toxiproxy-python keeps one address per process; each thread's calls must still reach its own
lab's Toxiproxy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from minietcd.errors import LabError
from minietcd.lab.links import Links
from minietcd.lab.ports import free_ports
from minietcd.lab.state import LabState, MemberState
from minietcd.lab.toxiproxy import ToxiproxyHandle, start_toxiproxy

ROUNDS = 40


def lab_state(tmp: Path, url: str, prefix: str) -> LabState:
    state = LabState(str(tmp), "tok", 100, 1000, False, url, prefix)
    for i, (client, peer, metrics) in enumerate(zip(*[iter(free_ports(9))] * 3, strict=True)):
        state.members.append(MemberState(f"n{i + 1}", client, peer, metrics, i + 1, "", ""))
    return state


@pytest.fixture
def proxies() -> Iterator[tuple[ToxiproxyHandle, ToxiproxyHandle]]:
    a = start_toxiproxy(environ={})
    try:
        b = start_toxiproxy(environ={})
        try:
            yield a, b
        finally:
            b.close()
    finally:
        a.close()


def test_each_threads_calls_reach_its_own_labs_toxiproxy(
    tmp_path: Path, proxies: tuple[ToxiproxyHandle, ToxiproxyHandle]
) -> None:
    # Lab 0 is torn down and made again and again (six proxies per round, one call each, as a
    # cluster starting); lab 1's links are read and toggled meanwhile (as the web view's
    # collector and the page's buttons do).
    starting, watched = (Links(lab_state(tmp_path, h.url, f"lab{i}")) for i, h in enumerate(proxies))
    watched.create_all(free_ports(6))
    errors: list[str] = []
    done = threading.Event()

    def restart_links() -> None:
        try:
            for _ in range(ROUNDS):
                starting.destroy_all()
                starting.state.links.clear()
                starting.create_all(free_ports(6))
                assert len(starting.statuses()) == 6  # LabError: a proxy was made on the other lab's
        except (LabError, AssertionError) as e:
            errors.append(f"starting: {e}")
        finally:
            done.set()

    def watch_links() -> None:
        try:
            n = 0
            while not done.is_set():
                assert set(watched.statuses()) == {link.key for link in watched.state.links}
                watched.set_enabled(watched.state.links[:2], enabled=n % 2 == 1)
                n += 1
        except (LabError, AssertionError) as e:
            errors.append(f"watched: {e}")

    threads = [threading.Thread(target=restart_links), threading.Thread(target=watch_links)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    watched.set_enabled(watched.state.links, enabled=True)
    assert all(s.enabled for s in watched.statuses().values())
    assert set(starting.statuses()) == {link.key for link in starting.state.links}
