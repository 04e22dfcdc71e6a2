"""``minietcd-lab web`` in a real browser on a real 3-member lab cluster (normal pace).

One cluster and one web server for the module; each test puts the cluster back to health
first. The page is driven as a person drives it: clicks on members and buttons, no reloads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minietcd.lab.cluster import Cluster, ClusterSpec
from minietcd.lab.faults import Faults
from minietcd.lab.ports import free_ports
from minietcd.lab.web import recording
from tests.lab.lab_cli import local_env
from tests.lab.web_browser import (
    WebServer,
    browser,
    one_leader_js,
    require_browser,
    role_js,
    roles,
    wait_until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, WebServer]]:
    require_browser()
    cluster = Cluster.up(tmp_path_factory.mktemp("web") / "lab", ClusterSpec(size=3), timeout=120)
    try:
        web = WebServer(Path(cluster.state.lab_dir), free_ports(1)[0])
        try:
            yield cluster, web
        finally:
            web.stop()
    finally:
        print(cluster.log_tails(30))
        cluster.down()


@pytest.fixture(scope="module")
def chromium(lab: tuple[Cluster, WebServer]) -> Iterator[Any]:
    with browser() as b:
        yield b


@pytest.fixture
def page(lab: tuple[Cluster, WebServer], chromium: Any) -> Iterator[Any]:
    cluster, web = lab
    faults = Faults(cluster)
    faults.reset()
    for m in cluster.members:
        if cluster.process_state(m.name) == "killed":
            cluster.start(m.name)
    cluster.wait_healthy(60)
    p = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(web.url)
    p.evaluate("window.__sameDocument = true")  # gone if the page were ever reloaded
    yield p
    assert p.evaluate("window.__sameDocument") is True
    p.close()
    assert not errors, f"errors in the page: {errors}"


def api(web: WebServer) -> dict[str, Any]:
    with urllib.request.urlopen(web.url + "api/cluster", timeout=5) as r:
        state: dict[str, Any] = json.loads(r.read())
    return state


def test_three_members_and_one_leader(lab: tuple[Cluster, WebServer], page: Any) -> None:
    _, web = lab
    wait_until(page, "document.querySelectorAll('#ring g.member').length === 3", 30)
    wait_until(page, one_leader_js(), 30)
    drawn = roles(page)
    assert sorted(drawn) == ["n1", "n2", "n3"]
    assert sorted(drawn.values()) == ["follower", "follower", "leader"]
    terms = page.evaluate("[...document.querySelectorAll('#ring g.member')].map(g => g.dataset.term)")
    assert len(set(terms)) == 1 and int(terms[0]) >= 2
    # The same picture as JSON.
    frame = api(web)["frame"]
    leader = next(n for n, r in drawn.items() if r == "leader")
    assert frame["leader"] == leader and [m["name"] for m in frame["members"]] == ["n1", "n2", "n3"]
    assert {m["name"]: m["role"] for m in frame["members"]} == drawn


def test_kill_button_on_the_leader_shows_it_down_and_a_new_leader(page: Any) -> None:
    wait_until(page, one_leader_js(), 30)
    old = next(n for n, r in roles(page).items() if r == "leader")
    term = int(page.get_attribute(f"#ring g.member[data-member={old}]", "data-term"))
    page.click(f"#ring g.member[data-member={old}]")
    page.click("button[data-action=kill]")
    wait_until(page, role_js(old, "down"), 20)
    others = [n for n in ("n1", "n2", "n3") if n != old]
    wait_until(page, one_leader_js(others), 30)
    new = next(n for n, r in roles(page).items() if r == "leader")
    assert new != old and int(page.get_attribute(f"#ring g.member[data-member={new}]", "data-term")) > term
    story = page.inner_text("#story")
    assert f"kill {old}" in story and f"minietcd-lab kill {old}" in story
    assert f"{new} became leader" in story


def test_partition_shows_cut_links_and_a_minority_without_a_leader(page: Any) -> None:
    wait_until(page, one_leader_js(), 30)
    old = next(n for n, r in roles(page).items() if r == "leader")
    rest = [n for n in ("n1", "n2", "n3") if n != old]
    page.fill("#groups", f"{old} | {','.join(rest)}")
    page.click("button[data-action=partition]")
    for other in rest:
        a, b = sorted([old, other])
        wait_until(page, f"document.querySelector('[data-link={a}-{b}]').dataset.state === 'cut'", 15)
    a, b = sorted(rest)
    assert page.get_attribute(f"[data-link={a}-{b}]", "data-state") == "ok"
    # The majority elects a leader; the old one, alone, steps down (check-quorum) and stays without one.
    wait_until(page, one_leader_js(rest), 30)
    wait_until(page, role_js(old, "leader", is_not=True), 30)
    time.sleep(1.0)  # and it stays so
    assert roles(page)[old] in ("follower", "candidate", "pre-candidate")
    page.click("button[data-action=heal]")
    wait_until(
        page,
        f"document.querySelector('[data-link={a}-{b}]') && "
        f"[...document.querySelectorAll('.link')].every(l => l.dataset.state === 'ok')",
        15,
    )


def test_a_put_appears_in_every_log_and_becomes_committed(page: Any) -> None:
    wait_until(page, one_leader_js(), 30)
    key = f"web-test-{time.monotonic_ns()}"
    page.fill("#put-key", key)
    page.fill("#put-value", "hello")
    page.click("button[data-action=put]")
    for name in ("n1", "n2", "n3"):
        entry = f"#logs .logrow[data-log={name}] .entry[data-what='put {key}']"
        page.wait_for_selector(entry, timeout=20000)
        wait_until(page, f"document.querySelector(\"{entry}\").dataset.committed === 'true'", 20)
    assert "✓ put" in page.inner_text("#action-result")


def test_a_recorded_run_replays_and_scrubs(
    lab: tuple[Cluster, WebServer], page: Any, chromium: Any, tmp_path: Path
) -> None:
    cluster, _ = lab
    wait_until(page, one_leader_js(), 30)
    victim = next(n for n, r in roles(page).items() if r == "follower")
    page.click(f"#ring g.member[data-member={victim}]")
    page.click("button[data-action=pause]")
    wait_until(page, role_js(victim, "paused"), 20)
    time.sleep(1.0)
    with page.expect_download() as got:
        page.click("#save")
    path = tmp_path / "run.json"
    got.value.save_as(path)
    rec = json.loads(path.read_text())
    assert rec["format"] == "minietcd-lab-recording" and len(rec["frames"]) > 3
    replay = WebServer(Path(cluster.state.lab_dir), free_ports(1)[0], ["--replay", str(path)])
    try:
        rp = chromium.new_page(viewport={"width": 1400, "height": 1000})
        rp.goto(replay.url)
        rp.wait_for_selector("#replay-bar:not([hidden])")
        assert rp.is_disabled("button[data-action=kill]")
        span = rec["frames"][-1]["t"] - rec["frames"][0]["t"]

        def scrub_to(seconds: float) -> None:
            rp.fill("#scrubber", str(seconds))
            rp.dispatch_event("#scrubber", "input")

        scrub_to(span)  # the end: the member is paused
        wait_until(rp, role_js(victim, "paused"), 5)
        assert f"pause {victim}" in rp.inner_text("#story")
        pause_t = next(x["t"] for x in rec["timeline"] if x.get("text") == f"pause {victim}")
        scrub_to(max(0.0, pause_t - rec["frames"][0]["t"] - 0.5))  # before the pause
        wait_until(rp, role_js(victim, "paused", is_not=True), 5)
        assert rp.locator("#story li.future").count() > 0  # what comes after is dimmed
        before = rp.inner_text("#clock")
        rp.click("#step-fwd")  # to the next story item
        assert rp.inner_text("#clock") != before
        rp.click("#play")
        time.sleep(1.0)
        rp.click("#play")
        assert rp.inner_text("#play") == "▶"
        rp.close()
    finally:
        replay.stop()
    Faults(cluster).resume([victim])


def test_a_chaos_run_replays_with_its_operations_faults_and_leaders(chromium: Any, tmp_path: Path) -> None:
    path = tmp_path / "chaos.json.gz"
    env = local_env(tmp_path / "lab")
    r = subprocess.run(
        [sys.executable, "-m", "minietcd.lab", "chaos", "--size", "3", "--duration", "8s", "--seed", "5",
         "--nemesis", "kill,partition", "--record", str(path)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    rec = recording.load(path)
    chaos = rec["chaos"]
    assert chaos["title"].startswith("minietcd-lab chaos: 3 members, 8s, seed 5")
    assert chaos["verdict"] == "verdict: OK: no violation"
    assert chaos["ops"] and chaos["faults"] and chaos["leaders"]
    start, end = rec["frames"][0]["t"], rec["frames"][-1]["t"]
    # One clock: the operations and faults fall within the recorded frames (give or take the
    # cluster's start and the final checks).
    assert start - 5 < chaos["ops"][0]["invoke"] < end and start - 5 < chaos["faults"][0]["at"] < end
    assert any(seg["leader"] for seg in chaos["leaders"])
    replay = WebServer(tmp_path / "lab", free_ports(1)[0], ["--replay", str(path)])
    try:
        p = chromium.new_page(viewport={"width": 1400, "height": 1000})
        p.goto(replay.url)
        p.wait_for_selector("#chaos:not([hidden])")
        assert p.locator("#chaos-timeline rect.band").count() == len(chaos["faults"])
        assert p.locator("#chaos-timeline rect[class^=op-]").count() == len(chaos["ops"])
        before = p.inner_text("#clock")
        timeline = p.locator("#chaos-timeline")
        box = timeline.bounding_box()
        assert box is not None
        timeline.click(position={"x": box["width"] * 0.6, "y": box["height"] / 2})  # jump there
        assert p.inner_text("#clock") != before
        p.close()
    finally:
        replay.stop()
