"""What every command shares: exit codes, the client built from the global flags, the printer."""

from __future__ import annotations

import getpass
import inspect
import math
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from minietcd.client import Client
from minietcd.client.errors import error_message
from minietcdctl.flags import ExitError, Flag, Invocation
from minietcdctl.printers import FORMATS, Printer

T = TypeVar("T")

# etcdctl's exit codes (ctlv3/command/error.go).
EXIT_SUCCESS = 0
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3
EXIT_BAD_FEATURE = 4
EXIT_INTERRUPTED = 5
EXIT_IO = 6
EXIT_BAD_ARGS = 128

GLOBAL_FLAGS = [
    Flag("endpoints", "strings", ["127.0.0.1:2379"], "gRPC endpoints"),
    Flag("debug", "bool", False, "enable client-side debug logging"),
    Flag(
        "write-out", "string", "simple", "set the output format (fields, json, protobuf, simple, table)", "w"
    ),
    Flag("hex", "bool", False, "print byte strings as hex encoded strings"),
    Flag("dial-timeout", "duration", 2.0, "dial timeout for client connections"),
    Flag("command-timeout", "duration", 5.0, "timeout for short running command (excluding dial timeout)"),
    Flag("keepalive-time", "duration", 2.0, "keepalive time for client connections"),
    Flag("keepalive-timeout", "duration", 6.0, "keepalive timeout for client connections"),
    Flag("insecure-transport", "bool", True, "disable transport security for client connections"),
    Flag("insecure-discovery", "bool", True, "accept insecure SRV records describing cluster endpoints"),
    Flag(
        "insecure-skip-tls-verify",
        "bool",
        False,
        "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)",  # noqa: E501
    ),
    Flag("cert", "string", "", "identify secure client using this TLS certificate file"),
    Flag("key", "string", "", "identify secure client using this TLS key file"),
    Flag("cacert", "string", "", "verify certificates of TLS-enabled secure servers using this CA bundle"),
    Flag("user", "string", "", "username[:password] for authentication (prompt if password is not supplied)"),
    Flag(
        "password",
        "string",
        "",
        "password for authentication (if this option is used, --user option shouldn't include password)",
    ),
    Flag(
        "discovery-srv",
        "string",
        "",
        "domain name to query for SRV records describing cluster endpoints",
        "d",
    ),
    Flag("discovery-srv-name", "string", "", "service name to query when using DNS discovery"),
]


class Ctl:
    """One command's view of the global flags: its printer and clients."""

    def __init__(self, inv: Invocation) -> None:
        self.inv = inv
        self._printer: Printer | None = None
        self._clients: list[Client] = []
        self._login: list[Client] = []  # clients with credentials that have not logged in yet
        inv.on_exit.append(self.close)

    @property
    def printer(self) -> Printer:
        """The output printer (etcdctl's initDisplayFromCmd: exit 4 for an unknown -w)."""
        if self._printer is None:
            fmt = self.inv["write-out"]
            if fmt not in FORMATS:
                raise ExitError(EXIT_BAD_FEATURE, "unsupported output format")
            self._printer = Printer(fmt, self.inv["hex"])
        return self._printer

    @property
    def command_timeout(self) -> float:
        t: float = self.inv["command-timeout"]
        return t if t > 0 else math.inf

    @property
    def endpoints(self) -> list[str]:
        """--endpoints, or the members --discovery-srv finds (etcdctl's endpointsFromCmd:
        ``_etcd-client-ssl`` / ``_etcd-client`` SRV records; ``$MINIETCD_DNS_SERVER`` names the
        DNS server, see minietcd/client/srv.py)."""
        domain: str = self.inv["discovery-srv"]
        if domain:
            from minietcd.client.srv import SRVLookupError, client_endpoints

            try:
                eps = client_endpoints(
                    domain, self.inv["discovery-srv-name"], self.inv["insecure-discovery"],
                    warn=lambda m: print(m, file=sys.stderr),
                )  # fmt: skip
            except SRVLookupError as e:
                raise ExitError(EXIT_ERROR, str(e)) from None
            if eps:
                return eps
        return [e.strip() for e in self.inv["endpoints"]]

    def _tls(self) -> dict[str, Any]:
        for flag in ("cert", "key", "cacert"):
            if self.inv[flag] == "" and flag in self.inv.changed:
                raise ExitError(EXIT_BAD_ARGS, f"empty string is passed to --{flag} option")
        out: dict[str, Any] = tls_files(self.inv["cert"], self.inv["key"], self.inv["cacert"])
        if not self.inv["insecure-transport"] and not out:
            out["tls"] = True
        if self.inv["discovery-srv"]:
            # etcdctl binds --discovery-srv to the TLS server name: certificates name the domain.
            out["server_name"] = self.inv["discovery-srv"]
        return out

    def _auth(self) -> dict[str, Any]:
        user: str = self.inv["user"]
        password: str = self.inv["password"]
        if not user:
            return {}
        if not password:
            if ":" in user:
                user, password = user.split(":", 1)
            else:
                password = getpass.getpass("Password: ")
        return {"username": user, "password": password}

    def connection_options(self) -> dict[str, Any]:
        """The TLS and credential keyword arguments of :class:`Client` the global flags give
        (TLS files checked as etcdctl checks them; the password prompted for if needed)."""
        return {**self._tls(), **self._auth()}

    def client(self, endpoints: list[str] | None = None, *, auth: bool = True) -> Client:
        """A client for ``endpoints`` (default: --endpoints), configured by the global flags."""
        _ = self.printer  # etcdctl validates -w when it builds the client
        try:
            c = Client(
                endpoints if endpoints is not None else self.endpoints,
                timeout=self.command_timeout,
                dial_timeout=self.inv["dial-timeout"] or 2.0,
                keepalive_time=max(self.inv["keepalive-time"], 10.0),
                keepalive_timeout=max(self.inv["keepalive-timeout"], 1.0),
                **self._tls(),
                **(self._auth() if auth else {}),
            )
        except (ValueError, OSError) as e:
            # etcdctl only finds out when it cannot connect: a plain error, exit code 1.
            raise ExitError(EXIT_ERROR, str(e)) from None
        self._clients.append(c)
        if auth and self._auth().get("password"):
            self._login.append(c)
        return c

    async def login(self) -> None:
        """Log the clients in, as etcdctl's clientv3.New does when it dials: a failed log-in
        is a failed connection (exit code 2); auth being off on the server is no failure."""
        while self._login:
            c = self._login.pop()
            try:
                await c.login(timeout=self.inv["dial-timeout"] or 2.0)
            except Exception as e:
                raise ExitError(EXIT_BAD_CONNECTION, error_message(e)) from None

    async def call(
        self,
        aw: Awaitable[T],
        code: int = EXIT_ERROR,
        wrap: str = "{}",
        reraise: type[Exception] | tuple[type[Exception], ...] = (),
    ) -> T:
        """Await a client call (logging in first); on an error exit with ``code`` and etcd's
        wording, except for ``reraise`` errors, which the caller handles."""
        try:
            await self.login()
        except ExitError:
            if inspect.iscoroutine(aw):
                aw.close()  # never started: the log-in failed first
            raise
        try:
            return await aw
        except ExitError:
            raise
        except reraise:
            raise
        except Exception as e:
            raise ExitError(code, wrap.format(error_message(e))) from None

    async def close(self) -> None:
        """Close this command's clients; run for every command when it ends (main._close)."""
        for c in self._clients:
            await c.close()


def stdout_write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def tls_files(cert: str, key: str, ca: str) -> dict[str, str]:
    """The client's TLS files, checked as etcd's transport.TLSInfo.ClientConfig does: a cert
    needs its key (and the other way round), and each file is opened before connecting, with
    Go's error text. Returns the client's keyword arguments (cert_file, key_file, ca_file)."""
    if (cert or key) and not (cert and key):
        raise ExitError(EXIT_BAD_ARGS, f"KeyFile and CertFile must both be present[key: {key}, cert: {cert}]")
    out: dict[str, str] = {}
    for path, arg in ((cert, "cert_file"), (key, "key_file"), (ca, "ca_file")):
        if not path:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            reason = e.strerror or str(e)
            raise ExitError(EXIT_BAD_ARGS, f"open {path}: {reason[:1].lower()}{reason[1:]}") from None
        out[arg] = path
    return out
