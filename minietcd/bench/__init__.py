"""Load generation shared by ``minietcdctl bench`` and ``minietcdctl check perf``.

Small modules, one job each:

- :mod:`report`: the statistics and the text of etcd's ``pkg/report`` (summary, histogram,
  latency distribution, error distribution);
- :mod:`progress`: a progress bar on stderr in the style of etcd's (``pb.v1``, format ``Bom !``);
- :mod:`ratelimit`: a token bucket with the semantics of Go's ``golang.org/x/time/rate``;
- :mod:`pool`: raw ``grpc.aio`` channels and stubs (``minietcd/api``), one TCP connection each;
- :mod:`runner`: closed-loop workers that time every request into a :class:`~runner.Recorder`;
- :mod:`workloads`: the requests of etcd's benchmark (put, range, txn-put, lease keep-alive,
  watch latency);
- :mod:`checkperf`: ``etcdctl check perf``'s load levels and pass/fail rules.

The hot path uses the generated stubs directly, not :mod:`minietcd.client`: the client library's
per-call retry loop and result conversion cost more than a loaded 2-core machine can spare.
"""
