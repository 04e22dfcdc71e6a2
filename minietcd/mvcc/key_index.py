"""The revisions of one key, grouped in generations (etcd ``mvcc/key_index.go``).

A :class:`KeyIndex` stores, for one key, the revisions at which the key changed. A key's life
from creation to deletion is one *generation*; a delete (tombstone) appends its revision to the
current generation and opens a new, empty one. Every key index has at least one generation;
only the last one may be empty.

Worked example (etcd's own): ``put(1.0); put(2.0); tombstone(3.0); put(4.0); tombstone(5.0)``
on key ``"foo"`` gives::

    key:     "foo"
    rev: 5
    generations:
       {empty}
       {4.0, 5.0(t)}
       {1.0, 2.0, 3.0(t)}

Compacting removes the revisions smaller than or equal to ``rev`` except the largest one of
them (the value a reader at ``rev`` still needs). A generation that becomes empty is removed;
a key whose generations all go is removed from the index::

    compact(2)               compact(4)               compact(5)            compact(6)
       {empty}                  {empty}                  {empty}               {empty}
       {4.0, 5.0(t)}            {4.0, 5.0(t)}            -> key removed        -> key removed
       {2.0, 3.0(t)}

When the largest revision <= ``rev`` is a tombstone it is not kept either: nobody at or after
``rev`` can read a deleted key, so the whole finished generation goes (``compact(5)``).

The *available* set a compaction fills is the set of revisions still needed at ``rev``; the
store keeps those values and drops every other one at or below ``rev``. :meth:`KeyIndex.keep`
computes the same set without changing anything (HashKV uses it).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from minietcd.errors import MvccInvariantError, RevisionNotFoundError
from minietcd.mvcc.revision import MAX_INT64, ZERO_REV, Revision


@dataclass(slots=True)
class Generation:
    """One life of a key: from the put that created it to (and including) its tombstone."""

    #: How many times the key was written in this generation, tombstone included. Compaction
    #: drops revisions but never lowers ``ver``: versions of the kept revisions stay right.
    ver: int = 0
    #: The revision of the put that created this generation (ZERO_REV while empty).
    created: Revision = ZERO_REV
    #: The revisions of this generation, ascending. Empty only for the last generation.
    revs: list[Revision] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not self.revs

    def last_at_or_below(self, at_rev: int) -> int:
        """Index of the largest revision whose main is <= ``at_rev``, or -1.

        Equivalent to etcd's descending ``walk`` stopping at ``rev.main <= atRev``; a binary
        search because ``revs`` is sorted.
        """
        return bisect.bisect_right(self.revs, Revision(at_rev, MAX_INT64)) - 1


@dataclass(slots=True)
class KeyIndex:
    """All revisions of one key. See the module docstring for the worked example."""

    #: The key itself.
    key: bytes
    #: The revision of the last change (put or tombstone); puts must be strictly after it.
    modified: Revision = ZERO_REV
    #: Oldest first. Never empty once the key has been put; only the last may be empty.
    generations: list[Generation] = field(default_factory=list)

    # --- writes ----------------------------------------------------------------------------

    def put(self, rev: Revision) -> None:
        """Record a put at ``rev`` in the current generation (creating it if needed)."""
        if not rev > self.modified:
            raise MvccInvariantError(
                f"key index {self.key!r}: put at {rev} not after last change {self.modified}"
            )
        if not self.generations:
            # A new key (the common case): lists made at their final size, one Revision
            # object shared by all three fields. A key index is per key: bytes here add up.
            self.generations = [Generation(ver=1, created=rev, revs=[rev])]
            self.modified = rev
            return
        g = self.generations[-1]
        if not g.revs:  # the first put of a new generation creates the key
            g.created = rev
        g.revs.append(rev)
        g.ver += 1
        self.modified = rev

    def restore(self, created: Revision, modified: Revision, ver: int) -> None:
        """Start a key index from a stored value (etcd ``restore``): after a compaction the
        oldest surviving value of a key is mid-generation, so created and version come from it.
        """
        if self.generations:
            raise MvccInvariantError(f"key index {self.key!r}: restore on a non-empty index")
        self.modified = modified
        if created == modified:
            created = modified  # one object, not two equal ones (restarts index every key)
        self.generations = [Generation(ver=ver, created=created, revs=[modified])]

    def tombstone(self, rev: Revision) -> None:
        """Record a delete at ``rev``: end the current generation and open an empty one.

        Raises :class:`RevisionNotFoundError` when the key is already deleted (etcd returns
        ``ErrRevisionNotFound``); the index is unchanged then.
        """
        if self.is_empty():
            raise MvccInvariantError(f"key index {self.key!r}: tombstone on an empty index")
        if self.generations[-1].is_empty():
            raise RevisionNotFoundError(f"key {self.key!r} is not live")
        self.put(rev)
        self.generations.append(Generation())

    # Undo of the two writes above, used only to roll back an aborted write transaction. They
    # rely on being called in exact reverse order of the writes, newest first.

    def undo_put(self, prev_modified: Revision) -> None:
        g = self.generations[-1]
        if not g.revs:
            raise MvccInvariantError(f"key index {self.key!r}: undo_put on an empty generation")
        g.revs.pop()
        g.ver -= 1
        if not g.revs:
            g.created = ZERO_REV
        self.modified = prev_modified

    def undo_tombstone(self, prev_modified: Revision) -> None:
        if len(self.generations) < 2 or self.generations[-1].revs:
            raise MvccInvariantError(f"key index {self.key!r}: undo_tombstone without tombstone")
        self.generations.pop()
        self.undo_put(prev_modified)

    # --- reads -----------------------------------------------------------------------------

    def get(self, at_rev: int) -> tuple[Revision, Revision, int] | None:
        """``(modified, created, version)`` of the key as of ``at_rev``, or None when the key
        did not exist then (etcd returns ``ErrRevisionNotFound``)."""
        if self.is_empty():
            raise MvccInvariantError(f"key index {self.key!r}: get on an empty index")
        g = self.find_generation(at_rev)
        if g is None or not g.revs:
            return None
        n = g.last_at_or_below(at_rev)
        if n == -1:
            return None
        # Version counts from the generation's end: later puts each added one.
        return g.revs[n], g.created, g.ver - (len(g.revs) - n - 1)

    def since(self, rev: int) -> list[Revision]:
        """Revisions with main >= ``rev``; of several changes in one main revision only the
        last (largest sub) is returned, because readers never see the intermediate ones."""
        if self.is_empty():
            raise MvccInvariantError(f"key index {self.key!r}: since on an empty index")
        since = Revision(rev, 0)
        gens = self.generations
        gi = len(gens) - 1
        # Find the generation to start from: the newest one created before `since`.
        while gi > 0:
            g = gens[gi]
            if g.revs and since > g.created:
                break
            gi -= 1
        out: list[Revision] = []
        last = 0
        for g in gens[gi:]:
            for r in g.revs:
                if since > r:
                    continue
                if r.main == last:
                    out[-1] = r
                    continue
                out.append(r)
                last = r.main
        return out

    def find_generation(self, rev: int) -> Generation | None:
        """The generation holding the key's value at ``rev``; None if ``rev`` falls in a gap
        between generations (the key was deleted then) or before the first one."""
        gens = self.generations
        lastg = len(gens) - 1
        cg = lastg
        while cg >= 0:
            g = gens[cg]
            if not g.revs:
                cg -= 1
                continue
            # A finished generation whose tombstone is at or before rev: the key was deleted.
            if cg != lastg and g.revs[-1].main <= rev:
                return None
            if g.revs[0].main <= rev:
                return g
            cg -= 1
        return None

    def is_empty(self) -> bool:
        return len(self.generations) == 1 and not self.generations[0].revs

    # --- compaction ------------------------------------------------------------------------

    def compact(self, at_rev: int, available: set[Revision]) -> None:
        """Drop revisions <= ``at_rev`` except the largest (unless that is a tombstone); add
        the kept one to ``available``. The caller removes the key when :meth:`is_empty`."""
        if self.is_empty():
            raise MvccInvariantError(f"key index {self.key!r}: compact on an empty index")
        gen_idx, rev_index = self._do_compact(at_rev, available)
        g = self.generations[gen_idx]
        if g.revs:
            if rev_index != -1:
                g.revs = g.revs[rev_index:]
            # Only a tombstone left in a finished generation: nobody can read it, drop it.
            if len(g.revs) == 1 and gen_idx != len(self.generations) - 1:
                available.discard(g.revs[0])
                gen_idx += 1
        del self.generations[:gen_idx]

    def keep(self, at_rev: int, available: set[Revision]) -> None:
        """Fill ``available`` with what :meth:`compact` would keep, changing nothing."""
        if self.is_empty():
            return
        gen_idx, rev_index = self._do_compact(at_rev, available)
        g = self.generations[gen_idx]
        if g.revs and rev_index == len(g.revs) - 1 and gen_idx != len(self.generations) - 1:
            # The kept revision would be the generation's tombstone: not kept after all.
            available.discard(g.revs[rev_index])

    def _do_compact(self, at_rev: int, available: set[Revision]) -> tuple[int, int]:
        gens = self.generations
        gen_idx = 0
        # Skip generations wholly at or below at_rev (their tombstone is <= at_rev).
        while gen_idx < len(gens) - 1:
            if gens[gen_idx].revs[-1].main > at_rev:
                break
            gen_idx += 1
        g = gens[gen_idx]
        rev_index = g.last_at_or_below(at_rev)
        if rev_index != -1:
            available.add(g.revs[rev_index])
        return gen_idx, rev_index

    def copy(self) -> KeyIndex:
        """A deep copy (tests and snapshots compare key indexes without aliasing)."""
        return KeyIndex(
            self.key,
            self.modified,
            [Generation(g.ver, g.created, list(g.revs)) for g in self.generations],
        )
