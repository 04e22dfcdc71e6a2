"""The live view's parts that need no cluster: recordings, action requests, the lesson runner
and the web server's API (aiohttp's test client)."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from minietcd.errors import LabError
from minietcd.lab.web import actions as web_actions
from minietcd.lab.web import recording
from minietcd.lab.web.actions import Actions, Lab, Outcome, Planned, plan
from minietcd.lab.web.app import LiveView, live_app, replay_app
from minietcd.lab.web.collector import Stage
from minietcd.lab.web.lessons import Ctx, Lesson, LessonRunner, Step, Wait
from minietcd.lab.web.picture import ClusterInfo

INFO = ClusterInfo(("n1", "n2", "n3"), ("a1a1", "b2b2", "c3c3"), 500, 5000, "/lab")


def frame(leader: str | None, t: float = 1.0, roles: Mapping[str, str] | None = None) -> dict[str, Any]:
    roles = roles or {n: ("leader" if n == leader else "follower") for n in INFO.names}
    return {
        "t": t, "cluster": INFO.to_json(), "leader": leader, "leaders": [leader] if leader else [], "term": 4,
        "links": [],
        "members": [
            {"name": n, "role": roles[n], "removed": False, "leader": leader, "term": 4, "commit": 9,
             "applied": 9, "log": [[9, 4, "put greeting", ""]], "timer": None}
            for n in INFO.names
        ],
    }  # fmt: skip


# --- recordings -------------------------------------------------------------------------------------


def test_recordings_round_trip_plain_and_gzipped(tmp_path: Path) -> None:
    rec = recording.make("t", [frame("n1")], [{"seq": 1, "t": 1.0, "kind": "note", "text": "x"}], [])
    for name in ("run.json", "run.json.gz"):
        recording.save(tmp_path / name, rec)
        assert recording.load(tmp_path / name)["frames"] == rec["frames"]
    assert gzip.decompress((tmp_path / "run.json.gz").read_bytes()).startswith(b"{")
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "is not a recording (not JSON"),
        (b'{"format": "other"}', "is not a minietcd-lab recording"),
        (b'{"format": "minietcd-lab-recording", "version": 9}', "recording version 9"),
        (b'{"format": "minietcd-lab-recording", "version": 1, "frames": [], "timeline": [], "messages": []}',
         "holds no frames"),
        (b"\x1f\x8bbroken", "broken gzip file"),
    ],
)
def test_a_bad_recording_is_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(LabError, match=message.replace("(", r"\(")):
        recording.load(path)
    with pytest.raises(LabError, match="cannot read"):
        recording.load(tmp_path / "missing.json")


# --- action requests ----------------------------------------------------------------------------------


def test_actions_are_the_cli_commands() -> None:
    lab = Lab(Path("/nonexistent"))
    cases: dict[str, dict[str, Any]] = {
        "minietcd-lab kill n1": {"action": "kill", "members": ["n1"]},
        "minietcd-lab isolate n2 n3": {"action": "isolate", "members": ["n2", "n3"]},
        "minietcd-lab partition n1,n2 n3": {"action": "partition", "groups": [["n1", "n2"], ["n3"]]},
        "minietcd-lab slow n1 n2 --latency 300ms --jitter 0ms": {"action": "slow", "src": "n1", "dst": "n2",
                                                                  "latency": 300},
        "minietcd-lab flaky n1 n2 -p 0.5": {"action": "flaky", "src": "n1", "dst": "n2", "probability": 0.5},
        "minietcd-lab heal": {"action": "heal"},
        "minietcd-lab transfer n2": {"action": "transfer", "to": "n2"},
        "minietcd-lab remove n3": {"action": "remove", "member": "n3"},
        "minietcd-lab up --size 5 --pace teach": {"action": "up", "size": 5, "pace": "teach"},
        "etcdctl put 'a key' 'v 1'": {"action": "put", "key": "a key", "value": "v 1"},
    }
    for cli, spec in cases.items():
        assert plan(lab, spec).cli == cli


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"action": "explode"}, "unknown action 'explode'"),
        ({"action": "kill"}, "kill: give members as a list"),
        ({"action": "kill", "members": [""]}, "kill: give members as a list"),
        ({"action": "partition", "groups": "n1"}, "partition: give groups"),
        ({"action": "slow", "src": "n1"}, "slow: dst is missing"),
        ({"action": "slow", "src": "n1", "dst": "n2", "latency": "fast"}, "latency must be a whole number"),
        ({"action": "up", "size": 10}, "1 to 9 members, not 10"),
        ({"action": "up", "pace": "glacial"}, "pace is one of teach, normal"),
        ({"action": "put"}, "put: key is missing"),
    ],
)
def test_bad_action_requests_are_refused_before_anything_is_done(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(LabError, match=message):
        plan(Lab(Path("/nonexistent")), spec)


async def test_a_failing_action_is_an_unsuccessful_outcome_in_the_story() -> None:
    stage = Stage()
    actions = Actions(Lab(Path("/nonexistent")), stage)

    def broken() -> str:
        raise LabError("no cluster in /nonexistent (start one with `minietcd-lab up`)\nmore lines")

    out = await actions.run_planned(Planned("kill n1", "minietcd-lab kill n1", broken))
    assert (out.ok, out.text) == (False, "no cluster in /nonexistent (start one with `minietcd-lab up`)")
    kinds = [(x["kind"], x.get("ok")) for x in stage.picture.timeline]
    assert kinds == [("action", None), ("action-done", False)]


# --- the lesson runner ----------------------------------------------------------------------------------


class FakeActions:
    """Records what a lesson asks for; each action takes effect by changing the frame."""

    def __init__(self, stage: Stage, effects: Mapping[str, Any]) -> None:
        self.stage = stage
        self.effects = effects
        self.done: list[str] = []
        self.lab = Lab(Path("/tmp/nonexistent-lab"))
        self.running = None

    async def run(self, spec: Mapping[str, Any], source: str = "page") -> Outcome:
        text = f"{spec['action']} {' '.join(spec.get('members', []))}".strip()
        self.done.append(text)
        effect = self.effects.get(text)
        if effect is not None:
            self.stage.frames.append((len(self.stage.frames) + 1, effect))
        return Outcome(text != "put", "done" if text != "put" else "timed out", f"minietcd-lab {text}", 0.0)

    async def run_planned(self, planned: Planned, source: str = "page") -> Outcome:
        self.done.append(planned.text)
        return Outcome(True, await asyncio.to_thread(planned.call), planned.cli, 0.0)


def runner_with(lesson: Lesson, effects: Mapping[str, Any]) -> tuple[LessonRunner, FakeActions, Stage]:
    stage = Stage()
    stage.frames.append((1, frame("n1")))
    fake = FakeActions(stage, effects)
    return LessonRunner(fake, stage, pace="normal", book=[lesson]), fake, stage  # type: ignore[arg-type]  # a fake lab stands in for the real one


async def wait_status(runner: LessonRunner, *wanted: str) -> None:
    for _ in range(200):
        if runner.status in wanted:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"lesson status stayed {runner.status!r}")


async def test_a_lesson_runs_its_steps_waits_for_the_picture_and_fills_its_texts() -> None:
    def kill(ctx: Ctx) -> Iterator[Mapping[str, Any]]:
        yield {"action": "kill", "members": [ctx.vars["old"]]}

    lesson = Lesson("t", "Test", "a test", (
        Step("Start", "{leader} leads term {term} of {size} (majority {majority})."),
        Step("Kill", "kill {old}", note=lambda ctx: {"old": ctx.leader()}, do=kill,
             until=lambda ctx: ctx.leader() not in (None, ctx.vars["old"]), waiting="a new leader",
             after="{leader} took over from {old}"),
        Step("Put", "a put that fails is fine here",
             do=lambda ctx: [{"action": "put", "may_fail": True}, Wait(lambda c: True, "nothing")]),
        Step("Fail", "a put that must succeed", do=lambda ctx: [{"action": "put"}]),
    ))  # fmt: skip
    runner, fake, _ = runner_with(lesson, {"kill n1": frame("n2", 2.0, {"n1": "down", "n2": "leader",
                                                                             "n3": "follower"})})
    with pytest.raises(LabError, match="no lesson 'nope'"):
        runner.start("nope")
    runner.start("t")
    await wait_status(runner, "done")
    assert runner.text == "n1 leads term 4 of 3 (majority 2)."
    state = runner.state()
    assert state is not None and state["can_next"] and (state["step"], state["steps"]) == (0, 4)
    runner.next()
    await wait_status(runner, "done")
    assert fake.done == ["kill n1"]
    assert (runner.text, runner.after) == ("kill n1", "n2 took over from n1")
    runner.next()
    await wait_status(runner, "done")
    runner.next()
    await wait_status(runner, "failed")
    assert runner.after == "The lab could not do this: timed out"
    with pytest.raises(LabError, match="last step"):
        runner.next()
    await runner.stop()
    assert runner.state() is None


async def test_a_step_that_never_sees_its_condition_times_out_and_lets_the_person_go_on() -> None:
    lesson = Lesson("t", "Test", "", (
        Step("Wait", "waiting in vain", until=lambda ctx: False, waiting="a miracle", timeout=0.2),
        Step("After", "next one"),
    ))  # fmt: skip
    runner, _, _ = runner_with(lesson, {})
    runner.start("t")
    with pytest.raises(LabError, match="not finished yet"):
        runner.next()
    await wait_status(runner, "timeout")
    assert runner.after == "Not within 0 s (a miracle). Next goes on anyway."
    assert runner.state()["can_next"] is True  # type: ignore[index]  # state() is a JSON object here
    await runner.stop()


async def test_an_action_that_does_not_come_back_in_time_is_a_failure_in_the_story(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage = Stage()
    actions = Actions(Lab(Path("/nonexistent")), stage)

    def stuck() -> str:
        time.sleep(0.5)  # a lab call that does not come back in time
        return "late"

    monkeypatch.setattr(web_actions, "ACTION_BOUND", 0.1)
    out = await actions.run_planned(Planned("up 5", "minietcd-lab up 5", stuck))
    assert (out.ok, out.text) == (False, "not done within 0 s")
    kinds = [(x["kind"], x.get("ok")) for x in stage.picture.timeline]
    assert kinds == [("action", None), ("action-done", False)]
    assert actions.running is None


async def test_a_step_that_breaks_fails_with_one_line_instead_of_running_for_ever() -> None:
    lesson = Lesson("t", "Test", "", (
        Step("Broken", "picks a member", note=lambda ctx: {"first": ctx.up()[7]}),
        Step("After", "next one"),
    ))  # fmt: skip
    runner, _, _ = runner_with(lesson, {})
    runner.start("t")
    await wait_status(runner, "failed")
    assert runner.after == "The step broke (IndexError: list index out of range). Next goes on anyway."
    runner.next()
    await wait_status(runner, "finished")
    await runner.stop()


def test_every_lesson_of_the_book_is_well_formed() -> None:
    from minietcd.lab.web.lesson_book import LESSONS

    ids = [x.id for x in LESSONS]
    assert len(ids) == len(set(ids)) == 8
    for lesson in LESSONS:
        assert lesson.steps and lesson.title and lesson.summary
        for step in lesson.steps:
            assert step.title and step.text
            if step.until is not None:
                assert step.waiting, f"{lesson.id}/{step.title}: say what the step waits for"


# --- the web server ---------------------------------------------------------------------------------


async def test_live_api_without_a_cluster(tmp_path: Path) -> None:
    stage = Stage()
    lab = Lab(tmp_path)
    actions = Actions(lab, stage)
    view = LiveView(lab, stage, actions, LessonRunner(actions, stage))
    async with TestClient(TestServer(live_app(view))) as client:
        state = await (await client.get("/api/cluster")).json()
        assert state["mode"] == "live" and state["frame"] is None and state["lesson"] is None
        page = await client.get("/")
        assert page.status == 200 and "<svg id=\"ring\"" in await page.text()
        js = await client.get("/static/main.js")
        assert js.status == 200 and "import" in await js.text()
        bad = await client.post("/api/action", json={"action": "explode"})
        assert bad.status == 400 and (await bad.json())["text"] == "unknown action 'explode'"
        nobody = await (await client.post("/api/action", json={"action": "kill", "members": ["n1"]})).json()
        assert nobody["ok"] is False and "no cluster" in nobody["text"]
        assert (await client.post("/api/action", data=b"[")).status == 400
        lessons = await (await client.get("/api/lessons")).json()
        assert [x["id"] for x in lessons][:2] == ["first-election", "replicate-write"]
        assert (await client.post("/api/lesson/next")).status == 409
        assert (await client.get("/api/cluster?timeline_after=x")).status == 400
        rec = json.loads(await (await client.get("/api/recording")).read())
        assert rec["format"] == "minietcd-lab-recording" and rec["frames"] == []


async def test_replay_api_serves_the_recording_and_refuses_actions() -> None:
    rec = recording.make("a run", [frame("n1", 1.0), frame("n2", 2.0)], [], [])
    async with TestClient(TestServer(replay_app(rec, "run.json"))) as client:
        state = await (await client.get("/api/cluster")).json()
        assert state["mode"] == "replay" and state["frame"]["leader"] == "n1" and state["title"] == "a run"
        assert (await (await client.get("/api/recording")).json())["frames"][1]["leader"] == "n2"
        refused = await client.post("/api/action", json={"action": "heal"})
        assert refused.status == 409
        assert await (await client.get("/api/lessons")).json() == []


def test_a_write_counts_once_committed_and_applied_on_every_member_asked() -> None:
    runner, _, stage = runner_with(Lesson("t", "T", "", (Step("s", "s"),)), {})
    ctx = Ctx(runner)
    f = frame("n1")
    long_key = "lesson/a-key-longer-than-the-log-shows"
    f["members"][0]["log"] = [[9, 4, "put greeting", ""], [10, 4, "put lesson/a-key-longer-tha…", ""]]
    f["members"][1]["log"] = [[9, 4, "put greeting", ""], [10, 4, "put lesson/a-key-longer-tha…", ""]]
    f["members"][0].update(commit=10, applied=10)
    f["members"][1].update(commit=10, applied=9)
    f["members"][2]["log"] = [[9, 3, "put greeting", "divergent"]]
    stage.frames.append((2, f))
    assert ctx.committed_everywhere("greeting", ["n1", "n2"])
    assert not ctx.committed_everywhere("greeting")  # n3's copy is divergent
    assert ctx.committed_everywhere(long_key, ["n1"])
    assert not ctx.committed_everywhere(long_key, ["n1", "n2"])  # n2 has not applied it yet
    assert not ctx.committed_everywhere("other", ["n1"])
