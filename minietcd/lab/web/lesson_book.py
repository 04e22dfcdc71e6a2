"""The lessons of ``minietcd-lab web`` (the runner is lessons.py).

Each runs on a real cluster through the lab, at teaching pace (heartbeat 500 ms, election 5 s)
unless the page was started with ``--lesson-pace normal``. The texts cite the Raft paper
(Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm") by section, and
the documents minietcd was started from (the "seeds": seeds/README.md in the repository's
shared folder) where a lesson comes from one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any, Final

from minietcd.lab.fault_table import DOCUMENTED
from minietcd.lab.web.lessons import Call, Ctx, Item, Lesson, Step, Wait, ensure, led

TABLE_KEY: Final = "lesson/table"


def _fresh_key(name: str) -> str:
    """A key no earlier run of a lesson wrote (a lesson may run again on the same cluster, and
    must then wait for its own write, not find the last one)."""
    return f"lesson/{name}-{time.strftime('%H%M%S')}"


def _leads_among(names: Sequence[str], ctx: Ctx) -> bool:
    return ctx.leader(names) is not None


def _healthy(size: int, title: str, text: str, after: str = "{leader} leads term {term}.") -> Step:
    """A lesson's first step: a whole ``size``-member cluster with a leader (started if the one
    drawn is not such)."""
    return Step(title, text, do=lambda ctx: ensure(ctx, size), until=lambda ctx: ctx.leader() is not None,
                waiting="waiting for a leader", after=after)


def _nobody_leads(ctx: Ctx) -> bool:
    return not any(m["role"] == "leader" for m in ctx.members())


def _first_election() -> Lesson:
    return Lesson(
        "first-election",
        "The first election",
        "Three members start with no leader; watch the election timers run down and one member win.",
        (
            Step(
                "Three followers",
                "A fresh cluster of three members starts. Every member begins as a follower in term 1 "
                "and nobody leads. The arc around each member is its election timer: it runs down, and "
                "a follower whose timer runs out before it hears from a leader starts an election. Each "
                "timer is drawn at random between one and two election timeouts ({election} here), so "
                "that usually one member's runs out first (Raft paper, 5.2).",
                do=lambda ctx: [{"action": "up", "size": 3, "pace": ctx.pace}],
                until=lambda ctx: len(ctx.up()) == 3 and ctx.leader() is not None,
                waiting="waiting for a leader",
                after="{leader} won the election: it is leader of term {term}.",
            ),
            Step(
                "How the votes went",
                "Read the story on the right, oldest first. The first member whose timer ran out became "
                "a candidate: it voted for itself, raised its term and asked the others for their votes "
                "(the dots from it). A member grants its vote to the first candidate of a term whose log "
                "is at least as up to date as its own (paper 5.4.1), and only once per term: under each "
                "member you can read whom it voted for.",
                after="{leader} had votes from a majority ({majority} of {size}, its own included) and "
                      "became leader. A candidate that hears from a leader of its term or a newer one goes "
                      "back to being a follower.",
            ),
            Step(
                "Heartbeats keep the peace",
                "The leader now sends an empty append, a heartbeat, every {heartbeat} (the small pulses). "
                "Each heartbeat resets a follower's election timer, so the arcs never run out while the "
                "leader lives and no one else starts an election. Leadership lasts as long as the "
                "heartbeats arrive (paper 5.2).",
                after="Next: try the lesson \"The leader dies\", or kill the leader with the buttons.",
            ),
        ),
    )


def _replicate() -> Lesson:
    def setup(ctx: Ctx) -> Iterator[Item]:
        yield from ensure(ctx, 3)
        lead = ctx.leader() or ""
        for f in ctx.followers():
            yield {"action": "slow", "src": lead, "dst": f, "latency": 1000}

    def clear(ctx: Ctx) -> list[Item]:
        lead = ctx.vars.get("writer", "")
        return [{"action": "clear", "src": lead, "dst": f} for f in ctx.vars.get("readers", [])]

    return Lesson(
        "replicate-write",
        "Replicating a write",
        "A put goes to the leader, is appended to its log, copied to the followers and committed once "
        "a majority has it.",
        (
            Step(
                "The leader takes the writes",
                "Every write goes through the leader ({leader}): followers forward what clients send them. "
                "To make each step visible, the lab slows the links from the leader to its followers by "
                "one second (Toxiproxy latency: the leader's appends take 1 s to arrive).",
                do=setup,
                then=lambda ctx: {"writer": ctx.leader(), "readers": ctx.followers(),
                                  "readers_text": ", ".join(ctx.followers())},
                after="Links {writer} -> {readers_text} are slow now (drawn with their latency).",
            ),
            Step(
                "Put a key",
                "The lab puts {key}=hello through {writer}. Watch the leader's log (below): the new entry "
                "appears at the end of its row, not committed yet (outlined). The leader sends it in an "
                "append to each follower (the slow dots); each follower writes it to its log and answers.",
                note=lambda ctx: {"key": _fresh_key("greeting")},
                do=lambda ctx: [{"action": "put", "key": ctx.vars["key"], "value": "hello",
                                 "via": ctx.vars.get("writer")}],
                until=lambda ctx: ctx.committed_everywhere(ctx.vars["key"]),
                waiting="waiting until every member has the entry committed and applied",
                after="Committed: the leader counted a majority ({majority} of {size}, itself included) "
                      "holding the entry, moved its commit index past it and applied it, and only then "
                      "answered the client. The followers learned the new commit index from the next append "
                      "or heartbeat and applied it too (paper 5.3).",
            ),
            Step(
                "Links back to normal",
                "The lab removes the latency. An entry is committed once the leader that created it has "
                "it stored on a majority; from then on it is in the log of every future leader (paper "
                "5.4, Leader Completeness): a committed write is never lost while a majority survives.",
                do=clear,
                after="Try a put of your own with the form under the controls, and watch it replicate.",
            ),
        ),
    )


def _leader_dies() -> Lesson:
    return Lesson(
        "leader-dies",
        "The leader dies",
        "Kill the leader: the followers' timers run out, one of them is elected, and the old leader "
        "comes back as a follower.",
        (
            _healthy(
                3,
                "A healthy cluster",
                "Three members; {leader} leads term {term} and sends heartbeats every {heartbeat}.",
                "{leader} leads term {term}.",
            ),
            Step(
                "Kill the leader",
                "The lab kills {old_leader} with SIGKILL: no goodbye. Its heartbeats stop; the followers' "
                "election timers are no longer reset and run down. The first to run out starts an "
                "election at a higher term.",
                note=lambda ctx: {"old_leader": ctx.leader() or "?"},
                do=lambda ctx: [{"action": "kill", "members": [ctx.vars["old_leader"]]}],
                until=lambda ctx: ctx.leader() not in (None, ctx.vars["old_leader"]),
                waiting="waiting for a new leader",
                after="{leader} is the new leader, at term {term}. It needed {majority} votes of {size}: "
                      "its own and the other survivor's. A cluster of 3 tolerates 1 failure.",
            ),
            Step(
                "The old leader returns",
                "The lab restarts {old_leader} on its data directory. It starts as a follower in the term "
                "it had stored; the first message from {leader} carries a higher term, so it adopts that "
                "term and follows (paper 5.1). Whatever its log lacks is sent to it in appends.",
                do=lambda ctx: [{"action": "restart", "members": [ctx.vars["old_leader"]]}],
                until=lambda ctx: (m := ctx.member(ctx.vars["old_leader"])) is not None
                and m["role"] == "follower" and m["leader"] == ctx.leader() is not None,
                waiting="waiting until the old leader follows the new one",
                after="{old_leader} follows {leader}: one leader per term, and the old one lost its place.",
            ),
        ),
    )


def _partitions() -> Lesson:
    def split(ctx: Ctx) -> Mapping[str, Any]:
        lead = ctx.leader() or "n1"
        others = [n for n in ctx.up() if n != lead]
        minority = [lead, others[0]]
        majority = others[1:]
        return {"old_leader": lead, "minority": minority, "majority": majority,
                "minority_text": ", ".join(minority), "majority_text": ", ".join(majority)}

    def cut(ctx: Ctx) -> list[Item]:
        return [
            {"action": "partition", "groups": [ctx.vars["minority"], ctx.vars["majority"]]},
            # Sent to the old leader at once, before check-quorum makes it step down: appended
            # to its log, never committed.
            {"action": "put", "key": "lesson/lost", "value": "never", "via": ctx.vars["old_leader"],
             "timeout": 1.0, "may_fail": True},
        ]

    def majority_leader(ctx: Ctx) -> bool:
        lead = ctx.leader(ctx.vars["majority"])
        return lead is not None and lead in ctx.vars["majority"]

    return Lesson(
        "partitions",
        "Minority and majority partitions",
        "Cut a leader off with one follower: the majority elects a new leader, the minority cannot "
        "write, and its uncommitted entry is overwritten on healing.",
        (
            _healthy(
                5,
                "Five members",
                "A 5-member cluster: a majority is {majority}, so it tolerates {tolerance} failures.",
                "{leader} leads term {term}.",
            ),
            Step(
                "Split: 2 | 3",
                "The lab partitions the network: {minority_text} on one side (with the leader: a "
                "minority of 2), {majority_text} on the other. At once it also sends a write to "
                "{old_leader}: still believing it leads, it appends the entry to its log, but it can "
                "never commit it without a majority.",
                note=split,
                do=cut,
                until=majority_leader,
                waiting="waiting for the majority to elect a leader",
                after="The majority ({majority_text}) elected {leader} at term {term}. {old_leader} stepped "
                      "down once an election timeout passed without hearing from a majority (check-quorum, "
                      "thesis 6.2). Its uncommitted entry is drawn as divergent (crossed) in its log: the "
                      "new leader holds something else at that index.",
            ),
            Step(
                "The majority writes",
                "A write through {leader} on the majority side succeeds: 3 of 5 is a majority. The "
                "minority answers reads only if they may be stale (serializable); it cannot write.",
                note=lambda ctx: {"key": _fresh_key("majority")},
                do=lambda ctx: [{"action": "put", "key": ctx.vars["key"], "value": "majority",
                                 "via": ctx.leader(ctx.vars["majority"])}],
                until=lambda ctx: ctx.committed_everywhere(ctx.vars["key"], ctx.vars["majority"]),
                waiting="waiting until the majority has committed the write",
                after="Committed on {majority_text}.",
            ),
            Step(
                "Heal",
                "The lab heals the network. {old_leader} and its follower hear from {leader}'s higher term "
                "and follow it. The leader finds where their logs diverge and overwrites the divergent "
                "entries with its own (paper 5.3): the write that was never committed disappears.",
                do=lambda ctx: [{"action": "heal"}],
                until=lambda ctx: ctx.leader() is not None and len(ctx.up()) == 5
                and ctx.committed_everywhere(ctx.vars["key"]),
                waiting="waiting until all five follow one leader",
                after="One leader, one log. The client that wrote to the old leader got an error (or a "
                      "timeout): its write never counted.",
            ),
        ),
    )


def _even_split() -> Lesson:
    def halves(ctx: Ctx) -> Mapping[str, Any]:
        lead = ctx.leader() or "n1"
        others = [n for n in ctx.up() if n != lead]
        a, b = [lead, others[0]], others[1:]
        return {"side_a": a, "side_b": b, "a_text": ", ".join(a), "b_text": ", ".join(b),
                "term_before": ctx.frame.get("term", 0)}

    return Lesson(
        "even-split",
        "An even 2 | 2 split elects nobody",
        "Four members split in two halves: neither half has a majority of 3, so no leader anywhere "
        "until the network heals.",
        (
            _healthy(
                4,
                "Four members",
                "A 4-member cluster: a majority is {majority}, and it tolerates only {tolerance} failure, "
                "like a 3-member one.",
                "{leader} leads term {term}.",
            ),
            Step(
                "Split: 2 | 2",
                "The lab partitions {a_text} | {b_text}. Each half has 2 of 4 members: no half can "
                "gather 3 votes. The leader steps down after an election timeout (check-quorum); then both "
                "halves campaign again and again, and lose every time.",
                note=halves,
                do=lambda ctx: [{"action": "partition", "groups": [ctx.vars["side_a"], ctx.vars["side_b"]]}],
                until=lambda ctx: ctx.held_for("nobody", _nobody_leads(ctx), 3 * ctx.election_s()),
                waiting="waiting until nobody has led for three election timeouts",
                after="Nobody leads, on either side: the cluster takes no writes at all. Without pre-vote "
                      "every failed election raises a term (term {term} now, {term_before} before the "
                      "split); with --pre-vote they would ask first and keep their terms.",
            ),
            Step(
                "Heal",
                "The lab heals the network: one election among four is enough.",
                do=lambda ctx: [{"action": "heal"}],
                until=lambda ctx: ctx.leader() is not None,
                waiting="waiting for a leader",
                after="{leader} leads term {term}. An even number of members adds no tolerance, and a "
                      "split down the middle stops everything: etcd recommends odd sizes.",
            ),
        ),
    )


def _two_vs_one() -> Lesson:
    return Lesson(
        "two-members",
        "Why two members are worse than one",
        "A 2-member cluster needs both: losing either member stops it (seed 000: two-master "
        "Kubernetes clusters).",
        (
            _healthy(
                2,
                "Two members",
                "A Kubernetes blog post (seed 000, \"is your Kubernetes cluster down today? 2: double "
                "masters\") explains why two masters, each with an etcd member, halve availability "
                "instead of doubling it. Here is such a cluster: 2 members, so a majority is {majority}.",
                "{leader} leads term {term}, with the other member following.",
            ),
            Step(
                "Lose the follower",
                "The lab kills {follower}. The leader {leader} still runs but hears from only 1 of 2: not "
                "a majority. After an election timeout without a quorum it steps down (check-quorum).",
                note=lambda ctx: {"follower": (ctx.followers() or ["?"])[0], "first_leader": ctx.leader()},
                do=lambda ctx: [{"action": "kill", "members": [ctx.vars["follower"]]}],
                until=lambda ctx: ctx.held_for("down1", _nobody_leads(ctx), 2 * ctx.election_s()),
                waiting="waiting until nobody leads",
                after="No leader: the survivor campaigns but can only ever count its own vote. The cluster "
                      "is down although one of its two members runs.",
            ),
            Step(
                "Lose the leader instead",
                "The lab restarts {follower} (a leader is elected again) and then kills that leader. The "
                "same happens: whichever member fails, the cluster stops.",
                do=lambda ctx: [{"action": "restart", "members": [ctx.vars["follower"]]}],
                until=lambda ctx: ctx.leader() is not None,
                waiting="waiting for a leader again",
                then=lambda ctx: {"second_leader": ctx.leader()},
                after="{second_leader} leads again. Kill it with the buttons to see the same outage from "
                      "the other side.",
            ),
            Step(
                "The arithmetic",
                "A 1-member cluster is down when its one member fails. A 2-member cluster is down when "
                "either fails: about twice as often, and it tolerates no failure either (majority of 2 is "
                "2). A third member is what buys tolerance: 3 members tolerate 1. Even sizes never add "
                "tolerance (4 tolerates 1, like 3).",
                after="See the lesson \"The fault-tolerance table, live\" for sizes 1 to 9.",
            ),
        ),
    )


def _fault_table() -> Lesson:
    def size_step(n: int) -> Step:
        majority, tolerance = DOCUMENTED[n]

        def do(ctx: Ctx) -> list[Item]:
            names = [f"n{i}" for i in range(1, n + 1)]
            first = names[n - tolerance:] if tolerance else []
            extra = names[n - tolerance - 1]
            items: list[Item] = [{"action": "up", "size": n, "pace": "normal"}, led(n)]
            if first:
                items.append({"action": "kill", "members": first})
                survivors = names[: n - tolerance]
                items.append(Wait(partial(_leads_among, survivors), "a leader among the survivors"))
            put = {"action": "put", "key": TABLE_KEY, "value": f"size {n}", "may_fail": True}
            items.append({**put, "timeout": 3.0})
            items.append({"action": "kill", "members": [extra]})
            items.append({**put, "timeout": 2.0})
            return items

        def row(ctx: Ctx) -> Mapping[str, Any]:
            puts = [o for o in ctx.outcomes if o.cli.startswith("etcdctl put")]
            ok_k = bool(puts) and puts[0].ok
            fail_k1 = len(puts) > 1 and not puts[1].ok
            measured = tolerance if ok_k and fail_k1 else "?"
            ctx.table.append([str(n), str(majority), str(tolerance),
                              f"{'write ok' if ok_k else 'write FAILED'} with {tolerance} down",
                              f"{'no write' if fail_k1 else 'write ok?!'} with {tolerance + 1} down",
                              str(measured)])
            return {"ok_k": "succeeded" if ok_k else "FAILED",
                    "fail_k1": "failed" if fail_k1 else "SUCCEEDED"}

        return Step(
            f"{n} member{'s' if n > 1 else ''}",
            f"The lab starts {n} member{'s' if n > 1 else ''} (normal pace: quick elections), kills "
            f"{tolerance} of them and writes, then kills one more and writes again. Majority: {majority}.",
            do=do,
            then=row,
            after=f"With {tolerance} down the write {{ok_k}}; with {tolerance + 1} down it {{fail_k1}}. "
                  f"A {n}-member cluster tolerates {tolerance}.",
        )

    return Lesson(
        "fault-table",
        "The fault-tolerance table, live",
        "Sizes 1 to 9: kill as many members as each size tolerates, then one more, and write each "
        "time (seeds 000 and 003).",
        (
            Step(
                "The table",
                "Seeds 000 and 003 print etcd's fault-tolerance table: a cluster of N members needs a "
                "majority of N // 2 + 1 and so survives (N - 1) // 2 failures. (Seed 003's row for 4 "
                "members says majority 2; the right value is 3.) This lesson measures each row on a real "
                "cluster: press next for each size.",
            ),
            *(size_step(n) for n in range(1, 10)),
            Step(
                "What the table says",
                "Every odd size buys one more tolerated failure; the even size after it buys nothing but "
                "a bigger majority to gather. 3 and 5 are the usual choices; beyond 7, every write waits "
                "for more members.",
                do=lambda ctx: [{"action": "restart", "members": [m["name"] for m in ctx.members()
                                                                   if m["role"] == "down"]}]
                if any(m["role"] == "down" for m in ctx.members()) else [],
                until=lambda ctx: len(ctx.up()) == len(ctx.members()) and ctx.leader() is not None,
                waiting="waiting for the 9 members to be whole again",
            ),
        ),
        table=("size", "majority", "tolerates", "with that many down", "with one more down", "measured"),
    )


def _controllers() -> Lesson:
    ttl = 5

    def start_one(name: str, ctx: Ctx) -> str:
        return ctx.runner.controllers.start(name, ctx.runner.endpoints(), ttl)

    def start(*names: str) -> list[Item]:
        return [Call(f"start controller {n}", f"python -m minietcd.lab.web.controller --id {n} --ttl {ttl}",
                     partial(start_one, n)) for n in names]

    def setup(ctx: Ctx) -> Iterator[Item]:
        yield from ensure(ctx, 3)
        yield from start("ctrl-a")
        yield Wait(lambda c: active(c) == "ctrl-a", "ctrl-a to be elected")
        yield from start("ctrl-b")

    def state(ctx: Ctx) -> Mapping[str, Any]:
        return ctx.runner.controller_state or {}

    def active(ctx: Ctx) -> str | None:
        return state(ctx).get("active")

    def kill_active(ctx: Ctx) -> list[Item]:
        name = ctx.vars["active"]
        return [Call(f"kill controller {name}", f"kill -9 <pid of {name}>",
                     lambda c: str(c.runner.controllers.kill(name)))]

    def standby_again(ctx: Ctx) -> bool:
        reps = {r["name"]: r for r in state(ctx).get("replicas", [])}
        r = reps.get(ctx.vars["active"])
        return r is not None and r["alive"] and r["role"] == "standby"

    return Lesson(
        "controllers",
        "Active/passive controllers elect a leader through a lease",
        "Two controller replicas, one active: kill it and the standby takes over once its lease "
        "expires (seeds 001 and 002).",
        (
            Step(
                "Two replicas",
                "Kubernetes runs its controller manager and scheduler as several replicas with "
                "--leader-elect: one works, the others wait (seed 001: active-passive; seed 002: "
                "--leader-elect on several masters). The lab starts two such replicas, ctrl-a and ctrl-b. "
                "Each asks for a lease of {ttl} s (etcd grants at least 1.5 election timeouts: "
                "{min_ttl} s here), keeps it alive every third of that, and campaigns in the election "
                "controller-leader: the replica whose key is oldest is active.",
                note=lambda ctx: {"ttl": ttl, "min_ttl": max(ttl, math.ceil(1.5 * ctx.election_s()))},
                do=setup,
                until=lambda ctx: active(ctx) is not None and len(state(ctx).get("queue", [])) == 2,
                waiting="waiting for one active replica and one standby",
                then=lambda ctx: {"active": active(ctx)},
                after="{active} is active: its key is first in the queue. The other waits for that key to "
                      "be deleted. The active one writes controller/status every second, fenced by its "
                      "key's revision.",
            ),
            Step(
                "Kill the active replica",
                "The lab kills {active} (SIGKILL: it cannot resign). Nothing keeps its lease alive any "
                "more: etcd's leader expires it after the TTL, deleting its key, and the standby's wait "
                "ends.",
                do=kill_active,
                until=lambda ctx: active(ctx) not in (None, ctx.vars["active"]),
                waiting="waiting for the lease to expire and the standby to take over",
                then=lambda ctx: {"successor": active(ctx)},
                timeout=60.0,
                after="{successor} is active. The switch took about one lease TTL: that is the price of "
                      "detecting a dead replica without a goodbye.",
            ),
            Step(
                "Bring it back",
                "The lab starts {active} again: it takes a new lease and queues behind {successor}.",
                do=lambda ctx: start(ctx.vars["active"]),
                until=standby_again,
                waiting="waiting for it to queue as standby",
                after="{active} waits as standby.",
            ),
            Step(
                "The etcd leader dies",
                "The lab kills etcd's leader, {etcd_leader}. The controllers' lease lives in the "
                "replicated state, not in one member: a new etcd leader is elected, extends every lease "
                "by a TTL (so none expires while there was no leader to renew it) and {successor} stays "
                "active.",
                note=lambda ctx: {"etcd_leader": ctx.leader() or "?"},
                do=lambda ctx: [{"action": "kill", "members": [ctx.vars["etcd_leader"]]}],
                until=lambda ctx: ctx.leader() not in (None, ctx.vars["etcd_leader"])
                and active(ctx) == ctx.vars["successor"],
                waiting="waiting for a new etcd leader",
                after="etcd has a new leader ({leader}) and the same controller is active: the election "
                      "survived. Restart {etcd_leader} with the buttons when you like.",
            ),
        ),
    )


LESSONS: Final[Sequence[Lesson]] = (
    _first_election(),
    _replicate(),
    _leader_dies(),
    _partitions(),
    _even_split(),
    _two_vs_one(),
    _fault_table(),
    _controllers(),
)
