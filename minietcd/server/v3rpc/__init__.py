"""The client-facing etcd v3 gRPC edge: thin servicers and the domain-error -> gRPC status table."""
