"""minietcd in application test suites (docs/testing.md).

* ``minietcd.testing.plugin``: the pytest plugin (fixtures ``minietcd``, ``minietcd_cluster``,
  ``minietcd_factory``, ``minietcd_client``; options ``--minietcd-size``, ``--minietcd-bin``),
  loaded by pytest through the ``pytest11`` entry point;
* ``MinietcdCluster`` (``minietcd.testing.cluster``): a cluster of real processes with faults as
  method calls, what the fixtures hand out, usable without pytest too;
* ``Etcd`` (``minietcd.embed``): one member inside the test's own event loop.

Nothing heavy is imported until asked for: pytest imports this package (for the plugin) in
every run, whether or not a test uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minietcd.embed import Etcd
    from minietcd.testing.cluster import MinietcdCluster

__all__ = ["Etcd", "MinietcdCluster"]


def __getattr__(name: str) -> Any:
    if name == "MinietcdCluster":
        from minietcd.testing.cluster import MinietcdCluster

        return MinietcdCluster
    if name == "Etcd":
        from minietcd.embed import Etcd

        return Etcd
    raise AttributeError(f"module 'minietcd.testing' has no attribute {name!r}")
