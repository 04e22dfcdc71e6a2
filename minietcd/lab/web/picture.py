"""The live view's rules: from what members report and what the lab did, to what the page draws.

Pure: no I/O and no clock (every input carries its time), so a recorded stream of inputs gives
the same pictures every time (tests/unit/lab/web/test_picture.py). Inputs:

* :meth:`Picture.member_view`: one member's ``/debug/raft/view`` answer (observe.raft_view_json
  with the events and sampled messages new since the last one), or why it did not answer;
* :meth:`Picture.lab_facts`: the lab's side, read from the processes and Toxiproxy: which
  members run, are paused or killed, and the state of every directed link;
* :meth:`Picture.action_started` / :meth:`Picture.action_done`: what the lab was told to do
  (a button, a lesson step), marked in the story.

Outputs: :meth:`Picture.frame` (members, links, leader at one instant), and two numbered
streams the page reads incrementally: the story (:attr:`timeline`: explained events with lab
names, lab actions, notes) and the messages drawn as moving dots (:attr:`messages`).

Rules worth knowing (each is a test):

* A member's role is what it reports, unless the lab knows better: a killed process is
  ``down``, a stopped one ``paused``; a member that does not answer is ``down`` too. A follower
  that is a learner in the configuration is drawn as ``learner``.
* A member whose id is not in the configuration any more (the leader's voters and learners) is
  ``removed``: MemberRemove, not a crash.
* Divergent log entries: compared with the log of the leader of the highest term, an entry is
  divergent when the leader holds another term at that index, or when it lies beyond the
  leader's last index with an older term than the leader's (it can only be overwritten: Raft
  paper 5.3, "the leader forces the followers' logs to duplicate its own").
* A message is ``lost`` when, as it was sent, its link was cut or blackholed or its
  destination was down or paused (Toxiproxy drops it; the sender's transport finds out later).
* Link states per direction: ``cut`` (proxy disabled, or a blackhole toxic on every
  connection), ``flaky`` (a blackhole on some connections), ``slow`` (latency), ``ok``; a pair
  of members is drawn in the worse of its two directions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from minietcd.lab.events import rename

ROLES: Final = ("leader", "candidate", "pre-candidate", "follower", "learner", "down", "paused")
LINK_STATES: Final = ("ok", "slow", "flaky", "cut")  # in order of severity
TEACH_PACE: Final = (500, 5000)  # (heartbeat ms, election ms) of `minietcd-lab up --pace teach`
NORMAL_PACE: Final = (50, 500)
TIMELINE_SIZE: Final = 10000  # story items kept (what a recording holds)
MESSAGE_SIZE: Final = 30000  # messages kept: minutes of traffic at teaching pace, less at normal pace
WARM_UP: Final = 2.0  # seconds a new cluster's members have to answer before frames are taken
EXPLAINED_SECONDS: Final = 3.0  # lab changes seen this soon after an action are that action's doing


def pace_name(heartbeat_ms: int, election_ms: int) -> str:
    if (heartbeat_ms, election_ms) == TEACH_PACE:
        return "teach"
    if (heartbeat_ms, election_ms) == NORMAL_PACE:
        return "normal"
    return "custom"


@dataclass(slots=True, frozen=True)
class ClusterInfo:
    """The lab cluster being drawn (from its state file)."""

    names: tuple[str, ...]
    ids: tuple[str, ...]  # hex member ids, in the order of names
    heartbeat_ms: int
    election_ms: int
    lab_dir: str = ""
    backend: str = "local"  # or "compose"

    @property
    def id_names(self) -> dict[str, str]:
        return dict(zip(self.ids, self.names, strict=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "ids": list(self.ids),
            "heartbeat_ms": self.heartbeat_ms,
            "election_ms": self.election_ms,
            "pace": pace_name(self.heartbeat_ms, self.election_ms),
            "lab_dir": self.lab_dir,
            "backend": self.backend,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> ClusterInfo:
        return ClusterInfo(
            tuple(data["names"]), tuple(data["ids"]), int(data["heartbeat_ms"]), int(data["election_ms"]),
            str(data.get("lab_dir", "")), str(data.get("backend", "local")),
        )  # fmt: skip


@dataclass(slots=True, frozen=True)
class Toxic:
    type: str  # Toxiproxy's: latency, timeout, bandwidth...
    toxicity: float
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class LinkFacts:
    """One directed link as Toxiproxy has it."""

    enabled: bool
    toxics: tuple[Toxic, ...] = ()


@dataclass(slots=True, frozen=True)
class LabFacts:
    time: float
    processes: Mapping[str, str]  # name -> running / paused / killed
    links: Mapping[str, LinkFacts] | None = None  # "n1->n2" -> facts; None: not known now

    def to_json(self) -> dict[str, Any]:
        links = None
        if self.links is not None:
            links = {
                k: {"enabled": f.enabled,
                    "toxics": [{"type": t.type, "toxicity": t.toxicity, "attributes": dict(t.attributes)}
                               for t in f.toxics]}
                for k, f in self.links.items()
            }
        return {"time": self.time, "processes": dict(self.processes), "links": links}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> LabFacts:
        links = None
        if data.get("links") is not None:
            links = {
                k: LinkFacts(bool(v["enabled"]), tuple(
                    Toxic(str(t["type"]), float(t["toxicity"]), dict(t.get("attributes") or {}))
                    for t in v.get("toxics", [])))
                for k, v in data["links"].items()
            }
        return LabFacts(float(data["time"]), dict(data["processes"]), links)


def direction_state(f: LinkFacts) -> tuple[str, str]:
    """(state, label) of one direction: ``("cut", "cut")``, ``("slow", "200ms")``..."""
    if not f.enabled:
        return "cut", "cut"
    state, labels = "ok", []
    for t in f.toxics:
        if t.type == "timeout":
            s, label = ("cut", "blackhole") if t.toxicity >= 1 else ("flaky", f"flaky {t.toxicity:.0%}")
        elif t.type == "latency":
            jitter = t.attributes.get("jitter") or 0
            s, label = "slow", f"{t.attributes.get('latency', 0)}ms" + (f"±{jitter}" if jitter else "")
        else:
            s, label = "slow", t.type
        labels.append(label)
        state = worse(state, s)
    return state, ", ".join(labels) if labels else "ok"


def worse(a: str, b: str) -> str:
    return a if LINK_STATES.index(a) >= LINK_STATES.index(b) else b


def delay_ms(f: LinkFacts | None) -> int:
    """The latency a slow link adds (for drawing a dot that takes longer)."""
    if f is None:
        return 0
    return sum(int(t.attributes.get("latency", 0)) for t in f.toxics if t.type == "latency")


# --- what messages say -------------------------------------------------------------------------------


def message_text(m: Mapping[str, Any]) -> str:
    """A message in words, for the dot's tooltip and the message list."""
    kind, idx, lt, commit, n = m["type"], m["index"], m["log_term"], m["commit"], m["entries"]
    if kind == "append":
        what = f"{n} entr{'y' if n == 1 else 'ies'}" if n else "no entries"
        return f"append {what} after {idx}@{lt}, commit {commit}"
    if kind == "append-resp":
        return f"rejects append after {idx}" if m["reject"] else f"has the log up to {idx}"
    if kind in ("vote", "pre-vote"):
        return f"{kind} for me at term {m['term']}? my log ends {idx}@{lt}"
    if kind in ("vote-resp", "pre-vote-resp"):
        return f"{kind.removesuffix('-resp')} {'refused' if m['reject'] else 'granted'} at term {m['term']}"
    if kind == "heartbeat":
        return f"heartbeat, commit {commit}"
    if kind == "heartbeat-resp":
        return "heartbeat answered"
    if kind == "snapshot":
        return f"snapshot up to {idx}"
    if kind == "timeout-now":
        return "campaign now (leadership transfer)"
    return str(kind)


# --- the picture ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Member:
    name: str
    view: dict[str, Any] | None = None  # the last answer (without its events and messages)
    answered: bool = False  # the last request was answered
    error: str = ""
    started: float | None = None  # the member's start time as it reports it


class Picture:
    """See the module docstring."""

    def __init__(self, info: ClusterInfo | None = None) -> None:
        self.info: ClusterInfo | None = None
        self._members: dict[str, _Member] = {}
        self._facts: LabFacts | None = None
        self.timeline: deque[dict[str, Any]] = deque(maxlen=TIMELINE_SIZE)
        self.messages: deque[dict[str, Any]] = deque(maxlen=MESSAGE_SIZE)
        self._timeline_seq = 0
        self._message_seq = 0
        self._running_actions = 0
        self._explained_until = 0.0
        self._cluster_since = 0.0
        if info is not None:
            self.set_cluster(info, 0.0)

    # --- inputs --------------------------------------------------------------------------------

    def set_cluster(self, info: ClusterInfo | None, t: float) -> None:
        """The lab's cluster appeared, changed (a member added back has a new id) or is gone."""
        if info == self.info:
            return
        old = self.info
        self.info = info
        self._cluster_since = t
        if info is None:
            self._members.clear()
            self._facts = None
            self.note(t, "no cluster in the lab dir")
            return
        self._members = {n: self._members.get(n, _Member(n)) for n in info.names}
        if old is None or old.names != info.names:
            self._facts = None
            self.note(t, f"cluster of {len(info.names)}: {', '.join(info.names)} "
                         f"(heartbeat {info.heartbeat_ms} ms, election {info.election_ms} ms)")

    def member_view(self, name: str, t: float, view: Mapping[str, Any] | None, error: str = "") -> None:
        """One poll of member ``name``: its view, or ``error`` if it did not answer."""
        m = self._members.get(name)
        if m is None:
            return
        if view is None:
            if m.answered and self.process(name) == "running" and not self._explained(t):
                self.note(t, f"{name} does not answer ({error})", name)
            m.answered, m.error = False, error
            return
        started = float(view.get("started", 0.0))
        if m.started is not None and started != m.started:
            self.note(t, f"{name} restarted: it numbers its events and messages from 1 again", name)
        m.started, m.answered, m.error = started, True, ""
        m.view = {k: v for k, v in view.items() if k not in ("events", "messages")}
        names = self.info.id_names if self.info else {}
        for e in view.get("events", []):
            self._add_timeline(
                float(e["time"]), "event", member=name, event=str(e["kind"]), term=int(e["term"]),
                text=rename(str(e["text"]), names),
            )  # fmt: skip
        for msg in view.get("messages", []):
            self._add_message(name, msg, names)

    def lab_facts(self, facts: LabFacts) -> None:
        """What the lab reads from the processes and Toxiproxy; changes nobody explained (made
        from another terminal, or a member that died by itself) become notes in the story."""
        old, self._facts = self._facts, facts
        if old is None or self._explained(facts.time):
            return
        for name, state in facts.processes.items():
            before = old.processes.get(name)
            if before is not None and before != state:
                word = {"killed": "is down", "paused": "is paused", "running": "runs again"}.get(state, state)
                self.note(facts.time, f"{name} {word} (seen by the lab)", name)
        if old.links is not None and facts.links is not None:
            for key, f in facts.links.items():
                before_f = old.links.get(key)
                if before_f is not None and direction_state(before_f) != direction_state(f):
                    self.note(facts.time, f"link {key} now {direction_state(f)[1]} (seen by the lab)")

    def action_started(self, t: float, text: str, cli: str, source: str = "page") -> int:
        """The lab was told to do something (``cli``: the same as a command); returns the story
        item's number, for :meth:`action_done`."""
        self._running_actions += 1
        return self._add_timeline(t, "action", text=text, cli=cli, source=source)

    def action_done(self, t: float, ref: int, ok: bool, result: str) -> None:
        self._running_actions = max(0, self._running_actions - 1)
        self._explained_until = max(self._explained_until, t + EXPLAINED_SECONDS)
        self._add_timeline(t, "action-done", ref=ref, ok=ok, text=result)

    def note(self, t: float, text: str, member: str | None = None) -> None:
        self._add_timeline(t, "note", text=text, member=member)

    # --- outputs -------------------------------------------------------------------------------

    def timeline_after(self, seq: int) -> list[dict[str, Any]]:
        return [x for x in self.timeline if x["seq"] > seq]

    def messages_after(self, seq: int, since: float | None = None) -> list[dict[str, Any]]:
        return [x for x in self.messages if x["seq"] > seq and (since is None or x["t"] >= since)]

    @property
    def last_timeline_seq(self) -> int:
        return self._timeline_seq

    @property
    def last_message_seq(self) -> int:
        return self._message_seq

    def warming_up(self, t: float) -> bool:
        """The cluster appeared less than :data:`WARM_UP` seconds ago and no member has answered
        yet: a frame now would draw every member down only because nobody was asked yet."""
        return (
            self.info is not None
            and t - self._cluster_since < WARM_UP
            and not any(m.answered for m in self._members.values())
        )

    def frame(self, t: float) -> dict[str, Any]:
        """The cluster at ``t`` as the page draws it."""
        if self.info is None:
            return {"t": t, "cluster": None, "members": [], "links": [], "leader": None, "leaders": []}
        names = self.info.id_names
        leaders = self._leaders()
        ref = self._members[leaders[0]].view if leaders else None
        config = self._configuration(ref)
        members = [self._member_json(m, names, ref, config) for m in self._members.values()]
        return {
            "t": t,
            "cluster": self.info.to_json(),
            "members": members,
            "links": self._links_json(),
            "leader": leaders[0] if leaders else None,
            "leaders": leaders,
            "term": max((m["term"] or 0 for m in members), default=0),
        }

    # --- helpers ----------------------------------------------------------------------------

    def _explained(self, t: float) -> bool:
        return self._running_actions > 0 or t <= self._explained_until

    def process(self, name: str) -> str:
        if self._facts is None:
            return "running"
        return str(self._facts.processes.get(name, "running"))

    def _add_timeline(self, t: float, kind: str, **fields: Any) -> int:
        self._timeline_seq += 1
        self.timeline.append({"seq": self._timeline_seq, "t": t, "kind": kind, **fields})
        return self._timeline_seq

    def _add_message(self, sender: str, msg: Mapping[str, Any], names: Mapping[str, str]) -> None:
        to = names.get(str(msg["to"]), str(msg["to"]))
        key = f"{sender}->{to}"
        link = self._facts.links.get(key) if self._facts and self._facts.links else None
        lost = self.process(to) != "running" or (link is not None and direction_state(link)[0] == "cut")
        self._message_seq += 1
        self.messages.append({
            "seq": self._message_seq,
            "t": float(msg["time"]),
            "from": sender,
            "to": to,
            "type": str(msg["type"]),
            "term": int(msg["term"]),
            "text": message_text(msg),
            "entries": int(msg["entries"]),
            "reject": bool(msg["reject"]),
            "lost": lost,
            "delay_ms": delay_ms(link),
        })

    def _leaders(self) -> list[str]:
        """Members that say they lead and answer, highest term first (an old leader cut off in a
        minority still says so until check-quorum makes it step down)."""
        found = [
            (int(m.view["term"]), m.name)
            for m in self._members.values()
            if m.view is not None and m.answered and m.view["role"] == "leader"
            and self.process(m.name) == "running"
        ]
        return [n for _, n in sorted(found, key=lambda x: -x[0])]

    def _configuration(self, ref: Mapping[str, Any] | None) -> set[str] | None:
        """Hex ids of the voters and learners in force (the leader's), None if unknown."""
        if ref is None:
            return None
        return {*ref.get("voters", []), *ref.get("learners", [])}

    def _role(self, m: _Member) -> str:
        process = self.process(m.name)
        if process == "killed":
            return "down"
        if process == "paused":
            return "paused"
        if m.view is None or not m.answered:
            return "down"
        role = str(m.view["role"])
        if role == "follower" and m.view.get("learner"):
            return "learner"
        return role

    def _member_json(
        self, m: _Member, names: Mapping[str, str], ref: Mapping[str, Any] | None, config: set[str] | None
    ) -> dict[str, Any]:
        role = self._role(m)
        v = m.view
        own_id = self.info.ids[self.info.names.index(m.name)] if self.info else ""
        out: dict[str, Any] = {
            "name": m.name,
            "id": own_id,
            "role": role,
            "process": self.process(m.name),
            "answering": m.answered,
            "error": m.error,
            "removed": config is not None and own_id not in config,
            "term": None, "vote": None, "leader": None, "commit": None, "applied": None,
            "first_index": None, "last_index": None, "timer": None, "log": [],
        }  # fmt: skip
        if v is None or str(v.get("id")) != own_id:
            return out  # never answered, or answered as the member it was before it was re-added
        vote, lead = str(v["vote"]), str(v["lead"])
        out.update(
            term=int(v["term"]),
            vote=names.get(vote, vote) if vote != "0" else None,
            leader=names.get(lead, lead) if lead != "0" else None,
            commit=int(v["commit"]),
            applied=int(v["applied"]),
            first_index=int(v["first_index"]),
            last_index=int(v["last_index"]),
            log=_log_json(v, ref if ref is not v else None),
        )
        if role in ("follower", "candidate", "pre-candidate"):
            tick = float(v["tick_ms"])
            timeout = int(v["election_timeout"])
            out["timer"] = {
                "at": float(v["time"]),
                "remaining_ms": max(0.0, (timeout - int(v["election_elapsed"])) * tick),
                "timeout_ms": timeout * tick,
            }
        return out

    def _links_json(self) -> list[dict[str, Any]]:
        if self.info is None or self._facts is None or self._facts.links is None:
            return []
        links = self._facts.links
        out = []
        names = self.info.names
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ab, ba = links.get(f"{a}->{b}"), links.get(f"{b}->{a}")
                if ab is None or ba is None:
                    continue
                (sab, lab), (sba, lba) = direction_state(ab), direction_state(ba)
                out.append({
                    "a": a, "b": b, "state": worse(sab, sba), "ab": sab, "ba": sba,
                    "label_ab": lab, "label_ba": lba,
                })  # fmt: skip
        return out


def _log_json(v: Mapping[str, Any], ref: Mapping[str, Any] | None) -> list[list[Any]]:
    """``[index, term, what, flag]`` per entry of the view's log tail; flag ``divergent`` (see the
    module docstring) or ``""``."""
    ref_terms: dict[int, int] = {}
    ref_last, ref_term = 0, 0
    if ref is not None:
        ref_terms = {int(e[0]): int(e[1]) for e in ref["log"]}
        ref_last, ref_term = int(ref["last_index"]), int(ref["term"])
    out = []
    for index, term, what in v["log"]:
        flag = ""
        if ref is not None:
            held = ref_terms.get(index)
            if (held is not None and held != term) or (index > ref_last and term < ref_term):
                flag = "divergent"
        out.append([index, term, what, flag])
    return out


def feed(picture: Picture, inputs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Replay a recorded input stream (``collector`` writes one with ``--record-inputs``) into
    ``picture``; returns the frame after each ``frame`` input. Input lines::

        {"t": ..., "cluster": {...} | null}
        {"t": ..., "member": "n1", "view": {...} | null, "error": "..."}
        {"t": ..., "facts": {...}}
        {"t": ..., "action": "...", "cli": "...", "ref": N}   /  {"t": ..., "done": N, "ok": ..., "text": ...}
        {"t": ..., "frame": true}
    """
    frames: list[dict[str, Any]] = []
    refs: dict[int, int] = {}
    for x in inputs:
        t = float(x["t"])
        if "cluster" in x:
            picture.set_cluster(None if x["cluster"] is None else ClusterInfo.from_json(x["cluster"]), t)
        elif "member" in x:
            picture.member_view(str(x["member"]), t, x.get("view"), str(x.get("error", "")))
        elif "facts" in x:
            picture.lab_facts(LabFacts.from_json(x["facts"]))
        elif "action" in x:
            refs[int(x["ref"])] = picture.action_started(t, str(x["action"]), str(x.get("cli", "")))
        elif "done" in x:
            picture.action_done(t, refs.get(int(x["done"]), 0), bool(x["ok"]), str(x.get("text", "")))
        elif "frame" in x:
            frames.append(picture.frame(t))
    return frames


def leader_lane(frames: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Who led when: ``[{"from": t0, "to": t1, "leader": "n2" | None, "term": 3}, ...]`` from
    consecutive frames (the chaos timeline's leader lane)."""
    lane: list[dict[str, Any]] = []
    for f in frames:
        leader, term = f.get("leader"), f.get("term", 0)
        if lane and lane[-1]["leader"] == leader and (leader is None or lane[-1]["term"] == term):
            lane[-1]["to"] = f["t"]
            continue
        if lane:
            lane[-1]["to"] = f["t"]
        lane.append({"from": f["t"], "to": f["t"], "leader": leader, "term": term})
    return lane
