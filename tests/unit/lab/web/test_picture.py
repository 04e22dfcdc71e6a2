"""The live view's event-to-picture rules (minietcd/lab/web/picture.py).

Two kinds of tests: the rules one by one on small hand-made inputs, and whole input streams
recorded from real 3-member clusters (data/*.jsonl.gz, made by record_streams.py) replayed
into a Picture, checking what a person would see at each moment.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from minietcd.lab.web import picture as pic
from minietcd.lab.web.collector import _same_picture_key
from minietcd.lab.web.picture import ClusterInfo, LabFacts, LinkFacts, Picture, Toxic

DATA = Path(__file__).parent / "data"
INFO = ClusterInfo(("n1", "n2", "n3"), ("a1a1", "b2b2", "c3c3"), 50, 500)


def view(
    mid: str,
    role: str = "follower",
    term: int = 2,
    lead: str = "a1a1",
    vote: str = "a1a1",
    *,
    log: list[list[Any]] | None = None,
    commit: int = 3,
    t: float = 100.0,
    started: float = 1.0,
    voters: tuple[str, ...] = ("a1a1", "b2b2", "c3c3"),
    learner: bool = False,
    events: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
    elapsed: int = 2,
    timeout: int = 12,
) -> dict[str, Any]:
    log = log if log is not None else [[1, 1, "add member a1"], [2, 1, "add member b2"], [3, 2, "no-op"]]
    return {
        "id": mid, "time": t, "started": started, "term": term, "vote": vote, "lead": lead, "role": role,
        "learner": learner, "voters": list(voters), "learners": [], "commit": commit, "applied": commit,
        "first_index": log[0][0] if log else 1, "last_index": log[-1][0] if log else 0,
        "lead_transferee": "0", "tick_ms": 50.0, "election_elapsed": elapsed, "election_timeout": timeout,
        "election_tick": 10, "heartbeat_elapsed": 0, "heartbeat_tick": 1, "log": log,
        "events": events or [], "messages": messages or [], "last_event_seq": 0, "last_message_seq": 0,
    }  # fmt: skip


def facts(
    t: float = 100.0, procs: dict[str, str] | None = None, links: dict[str, LinkFacts] | None = None
) -> LabFacts:
    p = {"n1": "running", "n2": "running", "n3": "running", **(procs or {})}
    all_links = {f"{a}->{b}": LinkFacts(True) for a in INFO.names for b in INFO.names if a != b}
    all_links.update(links or {})
    return LabFacts(t, p, all_links)


def healthy() -> Picture:
    p = Picture(INFO)
    p.lab_facts(facts())
    p.member_view("n1", 100.0, view("a1a1", "leader"))
    p.member_view("n2", 100.0, view("b2b2"))
    p.member_view("n3", 100.0, view("c3c3"))
    return p


def member(frame: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in frame["members"] if m["name"] == name)


def roles(frame: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["role"] for m in frame["members"]}


# --- rules, one by one -------------------------------------------------------------------------------


def test_roles_come_from_the_members_unless_the_lab_knows_better() -> None:
    p = healthy()
    f = p.frame(100.1)
    assert roles(f) == {"n1": "leader", "n2": "follower", "n3": "follower"}
    assert f["leader"] == "n1" and f["term"] == 2
    assert member(f, "n2")["vote"] == "n1" and member(f, "n2")["leader"] == "n1"
    p.lab_facts(facts(101.0, {"n1": "killed", "n3": "paused"}))
    assert roles(p.frame(101.1)) == {"n1": "down", "n2": "follower", "n3": "paused"}
    assert p.frame(101.1)["leader"] is None  # a killed leader leads nobody


def test_candidates_and_pre_candidates_have_their_timers() -> None:
    p = healthy()
    p.member_view("n2", 100.5, view("b2b2", "pre-candidate", lead="0", vote="0"))
    p.member_view("n3", 100.5, view("c3c3", "candidate", 3, lead="0", vote="c3c3"))
    f = p.frame(100.6)
    assert roles(f)["n2"] == "pre-candidate" and member(f, "n2")["timer"] is not None
    assert member(f, "n2")["vote"] is None and member(f, "n2")["leader"] is None
    assert roles(f)["n3"] == "candidate" and member(f, "n3")["vote"] == "n3"


def test_a_member_that_does_not_answer_is_down_and_a_learner_is_drawn_as_one() -> None:
    p = healthy()
    p.member_view("n3", 101.0, None, "connection refused")
    p.member_view("n2", 101.0, view("b2b2", learner=True))
    f = p.frame(101.1)
    assert member(f, "n3")["role"] == "down" and member(f, "n3")["error"] == "connection refused"
    assert member(f, "n2")["role"] == "learner"
    assert any(x["kind"] == "note" and "n3 does not answer" in x["text"] for x in p.timeline)


def test_a_member_no_longer_in_the_configuration_is_removed() -> None:
    p = healthy()
    p.member_view("n1", 101.0, view("a1a1", "leader", voters=("a1a1", "b2b2")))
    p.lab_facts(facts(101.0, {"n3": "killed"}))
    n3 = member(p.frame(101.1), "n3")
    assert n3["removed"] is True and n3["role"] == "down"
    assert member(p.frame(101.1), "n2")["removed"] is False


def test_election_timer_is_what_is_left_of_the_randomised_timeout() -> None:
    p = healthy()
    p.member_view("n2", 100.5, view("b2b2", elapsed=4, timeout=14, t=100.5))
    timer = member(p.frame(100.6), "n2")["timer"]
    assert timer == {"at": 100.5, "remaining_ms": 500.0, "timeout_ms": 700.0}
    assert member(p.frame(100.6), "n1")["timer"] is None  # a leader has no election timer


def test_divergent_entries_against_the_leader_of_the_highest_term() -> None:
    p = healthy()
    common = [[1, 1, "add member a1"], [2, 2, "no-op"]]
    # n1 led term 2 and was cut off; it took a write at index 3 that nobody else has.
    p.member_view("n1", 101.0, view("a1a1", "leader", 2, log=[*common, [3, 2, "put lost"]], commit=2))
    # n2 won term 3 and appended its no-op at index 3; n3 follows it.
    p.member_view(
        "n2", 101.0, view("b2b2", "leader", 3, lead="b2b2", vote="b2b2", log=[*common, [3, 3, "no-op"]])
    )
    p.member_view(
        "n3", 101.0, view("c3c3", "follower", 3, lead="b2b2", vote="b2b2", log=[*common, [3, 3, "no-op"]])
    )
    f = p.frame(101.1)
    assert f["leader"] == "n2" and f["leaders"] == ["n2", "n1"]
    flags = {m["name"]: [e[3] for e in m["log"]] for m in f["members"]}
    assert flags == {"n1": ["", "", "divergent"], "n2": ["", "", ""], "n3": ["", "", ""]}
    # An entry beyond the leader's last index from an older term can only be overwritten; one
    # of the leader's own term is merely newer than the leader's report.
    p.member_view(
        "n3", 101.2, view("c3c3", "follower", 3, lead="b2b2", log=[*common, [3, 3, "no-op"], [4, 3, "put x"]])
    )
    p.member_view(
        "n1",
        101.2,
        view("a1a1", "follower", 3, lead="b2b2", log=[*common, [3, 2, "put lost"], [4, 2, "put y"]]),
    )
    f = p.frame(101.3)
    assert [e[3] for e in member(f, "n3")["log"]] == ["", "", "", ""]
    assert [e[3] for e in member(f, "n1")["log"]] == ["", "", "divergent", "divergent"]


def test_link_states_per_direction_and_per_pair() -> None:
    slow = LinkFacts(True, (Toxic("latency", 1.0, {"latency": 200, "jitter": 50}),))
    flaky = LinkFacts(True, (Toxic("timeout", 0.3, {"timeout": 0}),))
    hole = LinkFacts(True, (Toxic("timeout", 1.0, {"timeout": 0}),))
    assert pic.direction_state(LinkFacts(False)) == ("cut", "cut")
    assert pic.direction_state(slow) == ("slow", "200ms±50")
    assert pic.direction_state(flaky) == ("flaky", "flaky 30%")
    assert pic.direction_state(hole) == ("cut", "blackhole")
    assert pic.direction_state(LinkFacts(True, (*slow.toxics, *flaky.toxics))) == (
        "flaky",
        "200ms±50, flaky 30%",
    )
    p = Picture(INFO)
    p.lab_facts(facts(links={"n1->n2": slow, "n2->n3": LinkFacts(False), "n3->n2": LinkFacts(False)}))
    links = {(x["a"], x["b"]): x for x in p.frame(100.0)["links"]}
    assert links[("n1", "n2")]["state"] == "slow" and links[("n1", "n2")]["ba"] == "ok"
    assert links[("n2", "n3")]["state"] == "cut" and links[("n1", "n3")]["state"] == "ok"


def test_messages_get_lab_names_and_are_lost_on_a_cut_link_or_to_a_silent_member() -> None:
    p = Picture(INFO)
    p.lab_facts(facts(links={"n1->n3": LinkFacts(False)}, procs={"n2": "running"}))

    def msg(to: str, kind: str = "append", seq: int = 1) -> dict[str, Any]:
        return {
            "seq": seq,
            "time": 100.0,
            "type": kind,
            "from": "a1a1",
            "to": to,
            "term": 2,
            "index": 7,
            "log_term": 2,
            "commit": 7,
            "entries": 1,
            "reject": False,
        }

    p.member_view("n1", 100.0, view("a1a1", "leader", messages=[msg("b2b2"), msg("c3c3", seq=2)]))
    sent = {m["to"]: m for m in p.messages}
    assert sent["n2"]["lost"] is False and sent["n3"]["lost"] is True
    assert sent["n2"]["text"] == "append 1 entry after 7@2, commit 7"
    p.lab_facts(facts(101.0, {"n2": "paused"}))
    p.member_view("n1", 101.0, view("a1a1", "leader", messages=[msg("b2b2", "heartbeat", 3)]))
    assert p.messages[-1]["lost"] is True and p.messages[-1]["type"] == "heartbeat"
    assert [m["seq"] for m in p.messages_after(1)] == [2, 3]


def test_events_are_renamed_and_a_restart_is_noted() -> None:
    p = healthy()
    ev = {
        "seq": 1,
        "time": 100.2,
        "kind": "became-leader",
        "term": 3,
        "text": "b2b2 became leader at term 3 with votes from a1a1,b2b2",
    }
    p.member_view("n2", 100.3, view("b2b2", "leader", 3, events=[ev]))
    assert p.timeline[-1]["text"] == "n2 became leader at term 3 with votes from n1,n2"
    assert p.timeline[-1]["member"] == "n2" and p.timeline[-1]["event"] == "became-leader"
    p.member_view("n2", 101.0, view("b2b2", started=2.0))
    assert "n2 restarted" in p.timeline[-1]["text"]


def test_lab_changes_nobody_explained_become_notes_but_an_actions_own_do_not() -> None:
    p = healthy()
    ref = p.action_started(101.0, "kill n2", "minietcd-lab kill n2")
    p.lab_facts(facts(101.1, {"n2": "killed"}))
    p.action_done(101.2, ref, True, "killed: n2")
    assert [x["kind"] for x in p.timeline][-2:] == ["action", "action-done"]
    p.lab_facts(facts(110.0, {"n2": "killed", "n3": "killed"}))  # from another terminal
    assert p.timeline[-1]["text"] == "n3 is down (seen by the lab)"
    p.lab_facts(facts(111.0, {"n2": "killed", "n3": "killed"}, {"n1->n2": LinkFacts(False)}))
    assert p.timeline[-1]["text"] == "link n1->n2 now cut (seen by the lab)"


def test_no_frames_while_a_new_cluster_warms_up_and_the_same_picture_is_one_frame() -> None:
    p = Picture()
    p.set_cluster(INFO, 100.0)
    assert p.warming_up(101.0)
    p.member_view("n1", 101.0, view("a1a1", "leader"))
    assert not p.warming_up(101.0)
    q = Picture()
    q.set_cluster(INFO, 100.0)
    assert not q.warming_up(102.5)  # nobody answers: that is worth drawing too
    a = healthy()
    a.member_view("n2", 100.0, view("b2b2", elapsed=2, t=100.0))
    first = _same_picture_key(a.frame(100.0))
    a.member_view("n2", 100.1, view("b2b2", elapsed=4, t=100.1))  # two ticks later: same deadline
    assert _same_picture_key(a.frame(100.1)) == first
    a.member_view("n2", 100.2, view("b2b2", elapsed=0, t=100.2))  # a heartbeat reset the timer
    assert _same_picture_key(a.frame(100.2)) != first


def test_leader_lane_from_frames() -> None:
    frames: list[dict[str, Any]] = [
        {"t": 1.0, "leader": "n1", "term": 2},
        {"t": 2.0, "leader": "n1", "term": 2},
        {"t": 3.0, "leader": None, "term": 2},
        {"t": 4.0, "leader": "n2", "term": 3},
    ]
    assert pic.leader_lane(frames) == [
        {"from": 1.0, "to": 3.0, "leader": "n1", "term": 2},
        {"from": 3.0, "to": 4.0, "leader": None, "term": 2},
        {"from": 4.0, "to": 4.0, "leader": "n2", "term": 3},
    ]


# --- recorded streams ----------------------------------------------------------------------------------


def stream(name: str) -> list[dict[str, Any]]:
    with gzip.open(DATA / f"{name}.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def test_recorded_stream_leader_killed_and_restarted() -> None:
    inputs = stream("leader-killed")
    p = Picture()
    frames = pic.feed(p, inputs)
    kill = next(x for x in p.timeline if x["kind"] == "action")
    victim = kill["text"].split()[-1]
    before = [f for f in frames if f["t"] < kill["t"]]
    after = [f for f in frames if f["t"] > kill["t"] + 0.6]
    assert before[-1]["leader"] == victim and len(before[-1]["members"]) == 3
    # Once the lab has seen the kill, the victim is drawn down; a new leader follows in a higher term.
    down = [f for f in after if member(f, victim)["role"] == "down"]
    assert down, "the killed leader is never drawn down"
    new = next(f for f in after if f["leader"] not in (None, victim))
    assert new["term"] > before[-1]["term"]
    leaders = [x for x in p.timeline if x.get("event") == "became-leader" and x["t"] > kill["t"]]
    assert leaders and leaders[0]["member"] == new["leader"]
    assert all(not any(c in x["text"] for c in p.info.ids) for x in p.timeline if p.info)  # lab names only
    # After the restart it follows the new leader again.
    assert member(frames[-1], victim)["role"] == "follower"
    assert member(frames[-1], victim)["leader"] == frames[-1]["leader"]
    # Messages sent to the killed member while it was down are drawn lost.
    restart = [x for x in p.timeline if x["kind"] == "action"][1]
    to_victim = [m for m in p.messages if m["to"] == victim and kill["t"] + 0.6 < m["t"] < restart["t"]]
    assert to_victim and all(m["lost"] for m in to_victim)


def test_recorded_stream_old_leader_cut_off_takes_a_write_that_is_overwritten() -> None:
    inputs = stream("old-leader-cut-off")
    p = Picture()
    frames = pic.feed(p, inputs)
    actions = [x for x in p.timeline if x["kind"] == "action"]
    assert [a["text"].split()[0] for a in actions] == ["partition", "put", "put", "heal"]
    old = actions[1]["text"].split()[-1]  # "put lost=never through n1"
    cut = [f for f in frames if actions[0]["t"] < f["t"] < actions[3]["t"]]
    # The lab's partition is drawn: every link of the old leader cut, the others fine.
    links = {(x["a"], x["b"]): x["state"] for x in cut[-1]["links"]}
    assert all(state == ("cut" if old in pair else "ok") for pair, state in links.items())
    # The write it took is in its log only, drawn divergent once the others have a new leader.
    divergent = [
        f for f in cut if any(e[2] == "put lost" and e[3] == "divergent" for e in member(f, old)["log"])
    ]
    assert divergent, "the old leader's lost write is never drawn divergent"
    assert divergent[-1]["leader"] != old
    assert not any(
        e[2] == "put lost" for n in INFO.names if n != old for e in member(divergent[-1], n)["log"]
    )
    # After healing, one log everywhere: the lost write is gone and "put kept" is committed on all.
    last = frames[-1]
    assert all(not any(e[2] == "put lost" for e in m["log"]) for m in last["members"])
    for m in last["members"]:
        kept = [e for e in m["log"] if e[2] == "put kept"]
        assert kept and m["commit"] >= kept[0][0]
    assert any(x.get("event") == "step-down" and x["member"] == old for x in p.timeline)
