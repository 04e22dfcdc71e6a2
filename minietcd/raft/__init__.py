"""The pure, deterministic Raft core.

No asyncio, sockets, files, clock or global random here: time enters as ``tick()``, randomness
from the seeded ``random.Random`` in :class:`~minietcd.raft.config.Config`, messages through
``step()``. Output comes out as a :class:`~minietcd.raft.rawnode.Ready`. See README "The Raft
core" for the loop a caller runs.
"""
