"""Every lesson of ``minietcd-lab web``, followed to its end in a real browser as a person
would (start, read, next...), at normal pace so that it takes minutes, not a quarter of an hour.
Each step must end as planned: its actions done and what it waits for seen in the picture."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from minietcd.lab.backend import load_cluster
from minietcd.lab.ports import free_ports
from minietcd.lab.state import LabState
from minietcd.lab.web.lesson_book import LESSONS
from tests.lab.web_browser import WebServer, browser, require_browser, run_lesson

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def web_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebServer, Any]]:
    require_browser()
    lab_dir = tmp_path_factory.mktemp("lessons") / "lab"
    lab_dir.mkdir()
    web = WebServer(lab_dir, free_ports(1)[0], ["--lesson-pace", "normal"])
    try:
        with browser() as b:
            p = b.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            p.on("pageerror", lambda e: errors.append(str(e)))
            p.goto(web.url)
            yield web, p
            assert not errors, f"errors in the page: {errors}"
    finally:
        web.stop()
        if LabState.exists(lab_dir):
            cluster = load_cluster(lab_dir)
            print(cluster.log_tails(30))
            cluster.down()
        print(web.log.read_text()[-3000:])


@pytest.mark.parametrize("lesson", [x.id for x in LESSONS])
def test_every_lesson_can_be_followed_to_its_end(web_page: tuple[WebServer, Any], lesson: str) -> None:
    web, page = web_page
    why: list[str] = []
    ended = run_lesson(page, lesson, why=why)
    steps = next(x for x in LESSONS if x.id == lesson).steps
    assert len(ended) == len(steps)
    assert ended[:-1] == ["done"] * (len(steps) - 1) and ended[-1] == "finished", (
        f"{lesson}: steps ended {ended}; " + "\n".join(why)
    )
    with urllib.request.urlopen(web.url + "api/cluster", timeout=5) as r:
        state = json.loads(r.read())["lesson"]
    assert state["id"] == lesson and state["unfilled"] == [], f"{lesson}: texts name unknown values"
