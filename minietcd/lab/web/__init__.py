"""``minietcd-lab web``: a live picture of a real lab cluster, for people learning Raft.

The page draws what the members report (``/debug/raft/view``: role, term, vote, election timer,
log tail, explained events, a sampled trace of the messages they send) and what the lab did to
them (processes, Toxiproxy links), the way RaftScope draws a simulation. Modules, bottom up:

* ``picture``: pure: member reports, lab facts and lab actions in; page frames, messages and a
  story (timeline) out. All the event-to-picture rules live here and are unit tested on
  recorded streams.
* ``collector``: polls the members and the lab and feeds a ``Picture``.
* ``actions``: the page's controls, each the same lab call as the matching CLI command.
* ``lessons``: the runner of guided scenarios, step by step through ``actions``;
  ``lesson_book``: the lessons themselves; ``controller``: the active/passive controller replica
  of the lease lesson.
* ``recording``: a run saved to one file; ``--replay`` plays it with no cluster.
  ``chaos_view``: a chaos run recorded with its operations and faults.
* ``app``: the aiohttp server; ``static/`` the page (SVG + JavaScript modules, no build step).
"""
