"""A seeded, deterministic simulator for the Raft core.

The core (``minietcd/raft``) is pure: time is ``tick()``, the network is ``step()``, the disk
is whatever the caller writes from a ``Ready``. So a test can *be* the world around it -- clocks,
network, disks, crashes -- and choose every event from one random seed. The same seed replays
the same run, message for message; a failing seed is a bug report.

Modules, from the bottom up:

``network.py``
    Messages in flight; drop, duplicate, delay, reorder; partitions (even non-transitive ones)
    and isolated nodes; paused receivers.
``state_machine.py``
    What each node applies: the list of client payloads and a running hash of every entry.
``checker.py``
    Raft's safety properties (Election Safety, Log Matching, Leader Completeness, State
    Machine Safety), "persist before you speak", monotonic commit, linearizable ReadIndex.
    Kept incremental, so it can run after *every* step.
``cluster.py``
    Nodes = RawNode + MemoryStorage (the disk) + state machine, driven through the Ready loop
    one stage at a time if need be; crash (lose what is not on disk), restart (from a copy of
    the disk), pause, compaction, membership (new nodes start empty; removed ones stop).
``scenario.py``
    One run from one seed: a Plan (cluster size, options, fault rates), a chaos phase, then
    recovery with liveness checks. ``simulate(seed)`` raises SimFailure with the transcript.
``transcript.py``
    The story of a run, rendered with ``minietcd.raft.describe``.

Reading a failure: the report names the broken property, then shows the last 200 lines --
``t=`` is the tick; indented lines are messages as delivered (or lost, and why) and ``*``
lines are the core's own events (elections, step-downs, conf changes). Replay with
``pytest tests/raft/test_simulation.py --seed N``, or, to see it all::

    from tests.raft.sim.scenario import Simulation
    sim = Simulation(N, keep=None)
    sim.run()  # raises; then: print(sim.c.transcript.render())
"""
