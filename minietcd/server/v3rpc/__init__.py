"""The gRPC face of a member: etcd's v3 services as adapters of the application API
(``minietcd.server.api``), the one table from typed errors to gRPC statuses (``errors.py``), and
the grpc-only edge pieces (request metadata in ``guard.py``, undecodable bytes in ``decode.py``)."""
