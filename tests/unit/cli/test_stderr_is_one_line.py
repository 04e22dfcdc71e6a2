"""minietcdctl's stderr is one error line in etcd's wording, even when gRPC's C core has
something to say (it logs every failed TLS handshake at INFO while it retries)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def not_tls_port() -> Iterator[int]:
    """A port that accepts connections and answers in plain HTTP, so every TLS handshake fails."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(5)
        srv.close()


def test_failed_tls_handshakes_leave_one_error_line(not_tls_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRPC_", "ETCDCTL_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "minietcdctl", f"--endpoints=https://127.0.0.1:{not_tls_port}",
         "--insecure-skip-tls-verify", "--dial-timeout=1s", "--command-timeout=2s", "get", "foo"],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == "Error: context deadline exceeded\n", proc.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        # etcd's transport.TLSInfo.ClientConfig and Go's os.Open, as etcdctl 3.4 prints them.
        (
            ["--cert=/nonexistent/c.crt"],
            "KeyFile and CertFile must both be present[key: , cert: /nonexistent/c.crt]",
        ),
        (["--cacert=/nonexistent/ca.crt"], "open /nonexistent/ca.crt: no such file or directory"),
        (["--cert="], "empty string is passed to --cert option"),
    ],
)
def test_tls_file_errors_in_etcds_wording(flags: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "minietcdctl", "--endpoints=127.0.0.1:1", *flags, "get", "foo"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (128, f"Error: {message}\n")
