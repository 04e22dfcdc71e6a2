"""etcd's URL rules, ported from Go so minietcd accepts and rejects exactly what etcd 3.4 does.

etcd parses every URL flag with Go's ``net/url.Parse`` and then ``pkg/types.NewURLs``
(scheme http/https/unix/unixs, a ``host:port`` authority, no path), and sorts the list.
Python's ``urllib`` disagrees with Go on enough edge cases (``127.0.0.1:2380`` without a
scheme, empty ports, upper-case schemes) that we port the few Go rules we need instead of
approximating them; error texts are Go's, because users paste them into search engines.

Everything here raises :class:`~minietcd.errors.ConfigError` with the bare Go error text;
callers add the flag-level wrapping etcd adds (``invalid value "..." for flag -x: ...``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from minietcd import golang
from minietcd.errors import ConfigError
from minietcd.golang import quote

__all__ = [
    "URL",
    "check_bind_urls",
    "check_host_urls",
    "detect_default_host",
    "parse_url",
    "parse_urls",
    "parse_urls_map",
    "resolve_tcp_host",
    "split_host_port",
    "urls_map_string",
]

#: Schemes etcd accepts for any URL flag (pkg/types/urls.go).
VALID_SCHEMES = frozenset({"http", "https", "unix", "unixs"})


@dataclass(frozen=True, slots=True)
class URL:
    """One parsed URL, as Go's ``url.URL`` holds it (only the parts etcd URLs can have).

    ``host`` is Go's ``Host``: ``hostname:port`` exactly as written (brackets kept for IPv6).
    ``str(url)`` is Go's ``url.String()``, which is what etcd hashes into member IDs and
    prints in messages, so it must round-trip byte for byte.
    """

    scheme: str
    host: str
    userinfo: str | None = None
    raw_query: str = ""
    force_query: bool = False
    fragment: str | None = None

    def __str__(self) -> str:
        out = f"{self.scheme}://"
        if self.userinfo is not None:
            out += self.userinfo + "@"
        out += self.host
        if self.force_query or self.raw_query:
            out += "?" + self.raw_query
        if self.fragment is not None:
            out += "#" + self.fragment
        return out

    @property
    def hostname(self) -> str:
        """Host without port and without IPv6 brackets (Go's ``URL.Hostname()``)."""
        host, _ = split_host_port(self.host)
        return host

    @property
    def port(self) -> int | None:
        """The port as a number; ``None`` for an empty port (``http://host:``), which Go allows."""
        _, port = split_host_port(self.host)
        return int(port) if port else None

    @property
    def is_unix(self) -> bool:
        return self.scheme in ("unix", "unixs")

    @property
    def is_tls(self) -> bool:
        return self.scheme in ("https", "unixs")

    @property
    def grpc_target(self) -> str:
        """Where gRPC binds or dials this URL: ``host:port``; for ``unix``/``unixs`` the socket
        file named ``host:port`` in the working directory, as etcd binds it
        (``pkg/transport.NewUnixListener(u.Host)``) and etcdctl dials it (``unix:<path>``)."""
        return f"unix:{self.host}" if self.is_unix else self.host


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort`` (``minietcd.golang``), failing with a ConfigError."""
    try:
        return golang.split_host_port(hostport)
    except golang.AddrError as e:
        raise ConfigError(str(e)) from None


def _get_scheme(raw: str) -> tuple[str, str]:
    """Go's url.getScheme: a scheme is letters then letters/digits/+-. up to the first ':'."""
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-."):
            if i == 0:
                return "", raw
            continue
        if c == ":":
            if i == 0:
                raise ConfigError("missing protocol scheme")
            return raw[:i], raw[i + 1 :]
        return "", raw
    return "", raw


def _valid_optional_port(port: str) -> bool:
    if port == "":
        return True
    if port[0] != ":":
        return False
    return all("0" <= c <= "9" for c in port[1:])


def _parse_authority_host(host: str) -> str:
    """Go's url.parseHost, reduced to its validation (etcd hosts need no unescaping)."""
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0:
            raise ConfigError("missing ']' in host")
        colon_port = host[end + 1 :]
        if not _valid_optional_port(colon_port):
            raise ConfigError(f"invalid port {quote(colon_port)} after host")
        return host
    i = host.rfind(":")
    if i >= 0:
        colon_port = host[i:]
        if not _valid_optional_port(colon_port):
            raise ConfigError(f"invalid port {quote(colon_port)} after host")
    return host


def _go_url_parse(raw: str) -> tuple[str, str | None, str, str, bool, str | None, str]:
    """The subset of Go's ``url.Parse`` etcd's URL checks depend on.

    Returns (scheme, userinfo, host, raw_query, force_query, fragment, path-or-opaque). Errors
    are Go's ``parse "<raw>": <why>``.
    """

    def fail(why: str) -> ConfigError:
        return ConfigError(f"parse {quote(raw)}: {why}")

    rest, sep, frag = raw.partition("#")
    fragment = frag if sep else None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in rest):
        raise fail("net/url: invalid control character in URL")
    try:
        scheme, rest = _get_scheme(rest)
    except ConfigError as e:
        raise fail(str(e)) from None
    scheme = scheme.lower()
    force_query = False
    raw_query = ""
    if rest.endswith("?") and rest.count("?") == 1:
        force_query = True
        rest = rest[:-1]
    else:
        rest, _, raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if scheme:
            # An "opaque" URL such as "http:host:2380" or "localhost:2380" (scheme "localhost"):
            # no authority, so NewURLs rejects it later for its scheme or missing host:port.
            return scheme, None, "", raw_query, force_query, fragment, ""
        seg = rest.split("/", 1)[0]
        if ":" in seg:
            raise fail("first path segment in URL cannot contain colon")
    userinfo: str | None = None
    host = ""
    if rest.startswith("//") and (scheme or not rest.startswith("///")):
        authority = rest[2:]
        slash = authority.find("/")
        path = authority[slash:] if slash >= 0 else ""
        authority = authority[:slash] if slash >= 0 else authority
        at = authority.rfind("@")
        if at >= 0:
            userinfo, authority = authority[:at], authority[at + 1 :]
        try:
            host = _parse_authority_host(authority)
        except ConfigError as e:
            raise fail(str(e)) from None
        rest = path
    return scheme, userinfo, host, raw_query, force_query, fragment, rest


def parse_url(raw: str) -> URL:
    """One etcd URL, validated as ``types.NewURLs`` does (leading/trailing blanks are trimmed)."""
    s = raw.strip()
    scheme, userinfo, host, raw_query, force_query, fragment, path = _go_url_parse(s)
    if scheme not in VALID_SCHEMES:
        raise ConfigError(f"URL scheme must be http, https, unix, or unixs: {s}")
    try:
        split_host_port(host)
    except ConfigError:
        raise ConfigError(f'URL address does not have the form "host:port": {s}') from None
    if path != "":
        raise ConfigError(f"URL must not contain a path: {s}")
    return URL(scheme, host, userinfo, raw_query, force_query, fragment)


def parse_urls(value: str | Iterable[str]) -> list[URL]:
    """A comma-separated URL list (or already split strings), sorted by string as etcd sorts.

    Duplicates are kept, as etcd keeps them. An empty string is one empty URL and fails with
    etcd's scheme error; an empty iterable fails with ``no valid URLs given``.
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    if not parts:
        raise ConfigError("no valid URLs given")
    return sorted((parse_url(p) for p in parts), key=str)


def parse_urls_map(value: str) -> dict[str, list[URL]]:
    """``--initial-cluster`` syntax (``types.NewURLsMap``): ``name=url,name=url,...``.

    A name may repeat to give a member several URLs. Empty items are skipped; an item without
    ``=`` is a name with an empty URL (which then fails the URL check). Names are not trimmed.
    """
    raw: dict[str, list[str]] = {}
    for item in value.split(","):
        if item == "":
            continue
        name, _, url = item.partition("=")
        raw.setdefault(name, []).append(url)
    return {name: parse_urls(urls) for name, urls in raw.items()}


def urls_map_string(urls_map: Mapping[str, Iterable[URL | str]]) -> str:
    """``URLsMap.String()``: sorted ``name=url`` pairs joined by commas."""
    pairs = sorted(f"{name}={u}" for name, urls in urls_map.items() for u in urls)
    return ",".join(pairs)


def check_bind_urls(urls: Iterable[URL]) -> None:
    """Listen URLs must name an IP (or ``localhost``): etcd binds them, it never resolves them."""
    for u in urls:
        if u.is_unix:
            continue
        host, _ = split_host_port(u.host)
        if host == "localhost":
            continue
        if not _is_go_ip(host):
            raise ConfigError(f"expected IP in URL for binding ({u})")


def check_host_urls(urls: Iterable[URL]) -> None:
    """Advertised URLs need a non-empty host (``http://:2380`` is rejected)."""
    for u in urls:
        host, _ = split_host_port(u.host)
        if host == "":
            raise ConfigError(f"unexpected empty host ({u})")


def _is_go_ip(host: str) -> bool:
    # Go's net.ParseIP: plain IPv4 or IPv6 text, no zone ("%eth0"), no brackets.
    if "%" in host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def lookup_name(host: str) -> str | bytes:
    """``host`` as getaddrinfo should get it: an ASCII name as bytes, as Go's resolver passes it
    on (Python encodes a str with IDNA, loading its codec and stringprep's tables, 0.1 MiB of a
    member, for names that need nothing of it)."""
    return host.encode("ascii") if host.isascii() else host


def resolve_tcp_host(host: str, port: str) -> str:
    """Resolve a DNS host name to ``ip:port`` the way etcd's netutil does (first address).

    Used only when ``--initial-advertise-peer-urls`` and ``--initial-cluster`` differ as
    strings. etcd retries for up to 30 s; we try once and let the error surface.
    """
    try:
        infos = socket.getaddrinfo(lookup_name(host), port or None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise ConfigError(f"lookup {host}: {e}") from None
    if not infos:
        raise ConfigError(f"lookup {host}: no such host")
    # Go's resolver orders IPv4 first when the host has both; getaddrinfo follows RFC 6724.
    infos.sort(key=lambda info: 0 if info[0] == socket.AF_INET else 1)
    ip = str(infos[0][4][0])
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def resolve_url(u: URL, resolver: Callable[[str, str], str] = resolve_tcp_host) -> URL:
    """``u`` with a DNS host replaced by its address; IPs, ``localhost`` and unix URLs as is."""
    if u.is_unix:
        return u
    host, port = split_host_port(u.host)
    if host == "localhost" or _is_go_ip(host):
        return u
    return URL(u.scheme, resolver(host, port), u.userinfo, u.raw_query, u.force_query, u.fragment)


def detect_default_host() -> str | None:
    """The address of the interface holding the default route, or ``None``.

    etcd 3.4 (``netutil.GetDefaultHost``) reads the routing table over netlink; asking the
    kernel which source address it would use for a route to a public address gives the same
    answer without netlink. Connecting a UDP socket sends no packet.
    """
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((target, 9))
                addr = str(s.getsockname()[0])
        except OSError:
            continue
        if addr and not ipaddress.ip_address(addr.split("%")[0]).is_unspecified:
            return addr
    return None
